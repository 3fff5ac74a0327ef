// What the browser specs share: settings from the environment, Debian's chromium, and
// the member's side of the website chat (its widget's log, sending, waiting for answers).

import { chromium } from "playwright-core";

/** A required setting from the environment. */
export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const ANSWER_TIMEOUT_MS = 60_000;

export const step = (text) => console.log(`- ${text}`);

export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    // CI runs as root in a container: Chromium's sandbox needs user namespaces.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}

/** Texts of the bot's messages in the log, without the screen-reader prefix. */
export async function botTexts(page) {
  return page.$$eval("#log .msg--bot", (nodes) =>
    nodes.map((n) => n.textContent.replace(/^アシスタント: /, "")),
  );
}

/** Wait until the bot said something after `before` messages and then went quiet. */
export async function answerAfter(page, before) {
  await page.waitForFunction(
    (n) => document.querySelectorAll("#log .msg--bot").length > n,
    before,
    { timeout: ANSWER_TIMEOUT_MS },
  );
  // An answer may come in several messages: wait until none arrives for a second.
  let count = -1;
  for (;;) {
    const now = (await botTexts(page)).length;
    if (now === count) break;
    count = now;
    await page.waitForTimeout(1000);
  }
  return (await botTexts(page)).slice(before).join("\n");
}

/** Type `text` into the chat and press Enter (no waiting). */
export async function send(page, text) {
  await page.getByLabel("メッセージ").fill(text);
  await page.getByLabel("メッセージ").press("Enter");
}

/** Send `text` and return the bot's whole answer. */
export async function say(page, text) {
  const before = (await botTexts(page)).length;
  await send(page, text);
  return answerAfter(page, before);
}

export async function connected(page) {
  await page.waitForSelector('#chat[data-state="connected"]', { timeout: ANSWER_TIMEOUT_MS });
}

/** The session as the widget keeps it in sessionStorage: {id, secret, lastActive}. */
export async function storedSession(page) {
  return page.evaluate(() => JSON.parse(sessionStorage.getItem("privacy-chat.session")));
}

/** The conversation's session id, as the widget keeps it. */
export async function sessionId(page) {
  return (await storedSession(page)).id;
}

/** The conversation id Rasa, the tracker store and staff know it by: web:<session id>. */
export async function conversationId(page) {
  return `web:${await sessionId(page)}`;
}
