// The website chat in a real headless Chromium (Debian's), driven by playwright-core.
//
// Run by tests/e2e/test_webchat_browser.py against the running servers:
//
//   node web/tests/webchat.spec.mjs <scenario> [WIDTHxHEIGHT]
//
// scenarios: conversation (the member's whole visit, at one viewport), idle (a fresh
// session after the idle timeout), sessions (a session cannot be taken by its id; one
// screen per session), socket (the channel guard and the session protocol, without a
// browser).
// Environment: WEBCHAT_URL, RASA_URL, RASA_TOKEN, ARTIFACT_DIR, CHROMIUM.
// Exit status 0 when every check passed; each step is printed as it runs.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { io } from "socket.io-client";

import {
  ANSWER_TIMEOUT_MS,
  answerAfter,
  botTexts,
  connected,
  conversationId,
  env,
  launch,
  say,
  sessionId,
  step,
  storedSession,
} from "./chat-page.mjs";

const WEBCHAT_URL = env("WEBCHAT_URL");
const RASA_URL = env("RASA_URL");
const RASA_TOKEN = env("RASA_TOKEN");
const ARTIFACT_DIR = env("ARTIFACT_DIR");
const ORG_NAME = "国際興業健康保険組合";
const GREETING = "アシスタントです";
const SESSION_KEY = "privacy-chat.session";
const TAKEN_OVER = "別の画面で開かれたため";
const NOT_CONTINUED = "前回の会話を続けられなかったため";
const SECRET = /^[A-Za-z0-9_-]{43,}$/;

async function userTexts(page) {
  return page.$$eval("#log .msg--user", (nodes) =>
    nodes.map((n) => n.textContent.replace(/^あなた: /, "")),
  );
}

/** A bot message sent through Rasa's HTTP API to a conversation (web:<session id>). */
async function sendAsBot(conversation, text) {
  // The id goes in as it is: Rasa's server does not decode %3A in the path, so an
  // encoded colon would name another conversation (web%3A…).
  const url = new URL(`/conversations/${conversation}/tracker/events`, RASA_URL);
  url.searchParams.set("token", RASA_TOKEN);
  url.searchParams.set("output_channel", "socketio");
  url.searchParams.set("execute_side_effects", "true");
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ event: "bot", text }),
  });
  assert.equal(response.status, 200, await response.text());
}

async function conversation(viewport) {
  const [width, height] = viewport.split("x").map(Number);
  const browser = await launch();
  try {
    const context = await browser.newContext({ viewport: { width, height }, locale: "ja-JP" });
    const page = await context.newPage();
    const problems = [];
    page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
    page.on("pageerror", (e) => problems.push(String(e)));
    // Every WebSocket of the page goes through the test, which can then cut it.
    const sockets = [];
    await page.routeWebSocket(/\/socket\.io\//, (ws) => {
      ws.connectToServer();
      sockets.push(ws);
    });

    step(`${viewport}: the page, its headers and its labels`);
    const response = await page.goto(WEBCHAT_URL);
    assert.equal(response.status(), 200);
    const csp = response.headers()["content-security-policy"] || "";
    for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'"]) {
      assert.ok(csp.includes(directive), `CSP lacks ${directive}: ${csp}`);
    }
    assert.equal(response.headers()["x-content-type-options"], "nosniff");
    assert.equal(await page.getAttribute("html", "lang"), "ja");
    assert.ok((await page.title()).includes(ORG_NAME));
    assert.equal((await page.textContent("#org-name")).trim(), ORG_NAME);
    assert.equal(await page.getAttribute("#log", "aria-live"), "polite");
    assert.equal(await page.getByLabel("メッセージ").getAttribute("maxlength"), "2000");
    await connected(page);

    step("greeting: the organization's name and quick replies as buttons");
    const greeting = await say(page, "こんにちは");
    assert.ok(greeting.includes(ORG_NAME), greeting);
    const quickReplies = page.locator("#log .quick-replies button.quick-reply");
    assert.ok((await quickReplies.count()) >= 2);

    step("keyboard: Tab from the log reaches the first quick reply");
    await page.focus("#log");
    await page.keyboard.press("Tab");
    assert.equal(
      await page.evaluate(() => document.activeElement.className),
      "quick-reply",
    );

    step("a quick reply is shown as the member's words and answered as its intent");
    const title = (await quickReplies.first().textContent()).trim();
    const before = (await botTexts(page)).length;
    await quickReplies.first().click();
    const picked = await answerAfter(page, before);
    assert.equal((await userTexts(page)).at(-1), title);
    assert.ok(picked.includes("出典"), picked);
    assert.ok(!picked.includes("申し訳ありません"), picked);

    step("a policy question gets a sourced answer");
    const answer = await say(page, "個人情報の利用目的を教えてください");
    assert.ok(answer.includes("出典"), answer);

    step("markup from the member and from the bot stays text; only http(s) links");
    await say(page, "<b>x</b> は太字になりますか");
    assert.equal((await userTexts(page)).at(-1), "<b>x</b> は太字になりますか");
    const id = await sessionId(page);
    const beforeBot = (await botTexts(page)).length;
    await sendAsBot(
      await conversationId(page),
      "<b>x</b> <img src=x> 詳しくは https://example.com/policy?a=1 をご覧ください。" +
        "javascript:alert(1)",
    );
    const injected = await answerAfter(page, beforeBot);
    assert.ok(injected.includes("<b>x</b> <img src=x>"), injected);
    assert.equal(await page.locator("#log b, #log img, #log script").count(), 0);
    const links = page.locator("#log a");
    assert.equal(await links.count(), 1);
    assert.equal(await links.first().getAttribute("href"), "https://example.com/policy?a=1");
    assert.equal(await links.first().getAttribute("rel"), "noopener noreferrer");

    step("a typed /intent payload the bot did not offer is not run as that intent");
    const typedPayload = await say(page, '/greet{"x":1}');
    assert.ok(!typedPayload.includes(GREETING), typedPayload);

    step("at most 2000 characters: the field stops there, the widget refuses more");
    await page.getByLabel("メッセージ").fill("あ".repeat(2001));
    const typed = await page.getByLabel("メッセージ").inputValue();
    assert.ok(typed.length <= 2000, `the field took ${typed.length} characters`);
    const sent = (await userTexts(page)).length;
    await page.$eval("#message", (field) => {
      field.value = "あ".repeat(2001); // as a script could, past maxlength
    });
    await page.getByLabel("メッセージ").press("Enter");
    assert.ok((await page.textContent("#message-error")).includes("2000文字以内"));
    assert.equal((await userTexts(page)).length, sent);
    await page.getByLabel("メッセージ").fill("");

    step("the layout fits the viewport (no sideways scrolling)");
    const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(scrollWidth <= width, `page is ${scrollWidth}px wide in a ${width}px viewport`);

    const shot = join(ARTIFACT_DIR, `webchat-${viewport}.png`);
    await page.screenshot({ path: shot, fullPage: false });
    console.log(`screenshot: ${shot}`);

    step("a reload keeps the conversation: same session, same history, and it goes on");
    const historyBefore = await page.$$eval("#log .msg", (n) => n.map((m) => m.textContent));
    const secretBefore = (await storedSession(page)).secret;
    assert.match(secretBefore, SECRET);
    await page.reload();
    await connected(page);
    assert.equal(await sessionId(page), id);
    // The server replaced the resume secret; it lives in sessionStorage only.
    const secretAfter = (await storedSession(page)).secret;
    assert.match(secretAfter, SECRET);
    assert.notEqual(secretAfter, secretBefore);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.deepEqual(await context.cookies(), []);
    const historyAfter = await page.$$eval("#log .msg", (n) => n.map((m) => m.textContent));
    assert.deepEqual(historyAfter, historyBefore);
    const afterReload = await say(page, "個人情報はどうやって守られていますか");
    assert.ok(afterReload.includes("出典"), afterReload);

    step("a dropped connection: the status says so, the widget reconnects, same session");
    const open = sockets.length;
    for (const ws of sockets) await ws.close({ code: 1006, reason: "test" }).catch(() => {});
    await page.waitForSelector('#chat[data-state="disconnected"]', { timeout: 10_000 });
    await connected(page);
    assert.ok(sockets.length > open, "no new WebSocket after the drop");
    assert.equal(await sessionId(page), id);
    const afterDrop = await say(page, "第三者に提供されることはありますか");
    assert.ok(afterDrop.trim().length > 0);

    assert.deepEqual(problems, [], `browser errors: ${problems.join("; ")}`);
  } finally {
    await browser.close();
  }
}

async function idle() {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    step("a conversation, then 16 idle minutes (the clock in storage moved back)");
    await page.goto(WEBCHAT_URL);
    await connected(page);
    await say(page, "こんにちは");
    const old = await sessionId(page);
    await page.evaluate(() => {
      const session = JSON.parse(sessionStorage.getItem("privacy-chat.session"));
      session.lastActive -= 16 * 60 * 1000;
      sessionStorage.setItem("privacy-chat.session", JSON.stringify(session));
    });
    await page.reload();
    await connected(page);
    step("the page starts a new session with an empty history and says why");
    const fresh = await sessionId(page);
    assert.notEqual(fresh, old);
    assert.equal(await page.locator("#log .msg--user, #log .msg--bot").count(), 0);
    assert.ok((await page.textContent("#log")).includes("15分間"));
    const stale = await page.evaluate((id) => sessionStorage.getItem(`privacy-chat.history.${id}`), old);
    assert.equal(stale, null);
    const greeting = await say(page, "こんにちは");
    assert.ok(greeting.includes(ORG_NAME), greeting);
  } finally {
    await browser.close();
  }
}

/** Open the chat in a fresh browser context (storage of its own), after `storage` is set. */
async function openWith(browser, storage) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.goto(WEBCHAT_URL);
  await connected(page);
  if (storage) {
    await page.evaluate((items) => {
      sessionStorage.clear();
      for (const [key, value] of Object.entries(items)) sessionStorage.setItem(key, value);
    }, storage);
    await page.reload();
    await connected(page);
  }
  return page;
}

/** Everything the member's side shows, as text. */
async function logText(page) {
  return (await page.textContent("#log")) || "";
}

async function sessions() {
  const browser = await launch();
  try {
    step("a member's conversation in one browser");
    const member = await openWith(browser, null);
    await say(member, "こんにちは");
    const question = "個人情報の利用目的を教えてください";
    const answer = await say(member, question);
    assert.ok(answer.includes("出典"), answer);
    const id = await sessionId(member);
    const stored = await storedSession(member);
    const history = await member.evaluate(
      (key) => sessionStorage.getItem(key),
      `privacy-chat.history.${id}`,
    );

    step("another browser given only the session id gets a new session, and sees nothing");
    const guessed = { id, secret: "A".repeat(43), lastActive: Date.now() };
    const stranger = await openWith(browser, { [SESSION_KEY]: JSON.stringify(guessed) });
    const strangerId = await sessionId(stranger);
    assert.notEqual(strangerId, id);
    assert.ok((await logText(stranger)).includes(NOT_CONTINUED), await logText(stranger));
    assert.ok(!(await logText(stranger)).includes(question));
    assert.equal(await stranger.locator("#log .msg--bot").count(), 0);

    step("what the member says and is told reaches the member only");
    const strangerBots = (await botTexts(stranger)).length;
    const again = await say(member, "個人情報はどうやって守られていますか");
    assert.ok(again.includes("出典"), again);
    const memberBots = (await botTexts(member)).length;
    await sendAsBot(`web:${id}`, "テストのお知らせです");
    await answerAfter(member, memberBots);
    await stranger.waitForTimeout(2000);
    assert.equal((await botTexts(stranger)).length, strangerBots);
    assert.ok(!(await logText(stranger)).includes("テストのお知らせ"));
    assert.equal(await sessionId(member), id);
    assert.ok(!(await logText(member)).includes(TAKEN_OVER));

    step("the stranger's words go to the stranger's own conversation");
    const own = await say(stranger, "こんにちは");
    assert.ok(own.includes(ORG_NAME), own);
    assert.equal((await botTexts(member)).length, memberBots + 1); // the notice only

    step("a copy of the tab (id and secret) takes the conversation over; the first is told");
    const copy = await openWith(browser, {
      [SESSION_KEY]: JSON.stringify(await storedSession(member)),
      [`privacy-chat.history.${id}`]: history,
    });
    assert.equal(await sessionId(copy), id);
    assert.notEqual((await storedSession(copy)).secret, stored.secret);
    assert.ok((await logText(copy)).includes(question));
    await member.waitForSelector('#chat[data-state="ended"]', { timeout: ANSWER_TIMEOUT_MS });
    assert.ok((await logText(member)).includes(TAKEN_OVER), await logText(member));
    assert.equal(await member.getByLabel("メッセージ").isDisabled(), true);
    assert.equal(await member.evaluate((key) => sessionStorage.getItem(key), SESSION_KEY), null);

    step("the conversation goes on in the copy only");
    const endedBots = (await botTexts(member)).length;
    const continued = await say(copy, "第三者に提供されることはありますか");
    assert.ok(continued.trim().length > 0);
    await member.waitForTimeout(2000);
    assert.equal((await botTexts(member)).length, endedBots);
    assert.equal(await member.getAttribute("#chat", "data-state"), "ended");

    step("「新しい会話」 on the ended screen starts a conversation of its own");
    await member.getByRole("button", { name: "新しい会話" }).click();
    await connected(member);
    assert.notEqual(await sessionId(member), id);
    assert.equal(await member.getByLabel("メッセージ").isDisabled(), false);
  } finally {
    await browser.close();
  }
}

/** A socket.io client of the channel, as a script would be; records what it gets. */
function scriptClient() {
  const client = io(RASA_URL, { transports: ["websocket"], reconnection: false });
  const got = { messages: [], takenOver: 0, disconnected: false };
  client.on("bot_uttered", (message) => got.messages.push(message));
  client.on("session_taken_over", () => {
    got.takenOver += 1;
  });
  client.on("disconnect", () => {
    got.disconnected = true;
  });
  const open = (request) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no session_confirm")), ANSWER_TIMEOUT_MS);
      client.once("session_confirm", (confirmation) => {
        clearTimeout(timer);
        resolve(confirmation);
      });
      const ask = () => client.emit("session_request", request);
      if (client.connected) ask();
      else client.once("connect", ask);
    });
  return { client, got, open };
}

/** The channel itself, spoken to as a script would, not through the widget. */
async function socket() {
  const { client, got, open } = scriptClient();
  const messages = got.messages;
  const others = [];
  try {
    const confirmed = await open({ session_id: "not-ours" });
    const id = confirmed.session_id;
    step("an id not issued by the channel is replaced by a fresh one, with a resume secret");
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.match(confirmed.resume_secret, SECRET);

    const reply = async (payload) => {
      const before = messages.length;
      client.emit("user_uttered", { session_id: id, ...payload });
      const deadline = Date.now() + ANSWER_TIMEOUT_MS;
      while (messages.length === before && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      await new Promise((r) => setTimeout(r, 1000));
      return messages.slice(before).map((m) => m.text || "").join("\n");
    };

    step("2001 characters are refused politely, and Rasa does not see them");
    const tooLong = await reply({ message: "あ".repeat(2001) });
    assert.ok(tooLong.includes("2000文字以内"), tooLong);

    step("a payload the bot offered runs; one it did not offer is plain words");
    const greeting = await reply({ message: "こんにちは" });
    assert.ok(greeting.includes(GREETING), greeting);
    const offered = messages.at(-1).quick_replies.map((r) => r.payload);
    assert.ok(offered.includes("/ask_contact"), offered.join(", "));
    const contact = await reply({ message: "/ask_contact" });
    assert.ok(!contact.includes("申し訳ありません"), contact);
    const unoffered = await reply({ message: '/greet{"x":1}' });
    assert.ok(!unoffered.includes(GREETING), unoffered);

    step("a message for a session this socket did not confirm is ignored");
    const before = messages.length;
    client.emit("user_uttered", { session_id: "0".repeat(32), message: "こんにちは" });
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(messages.length, before);

    step("another script with the session id alone, or a wrong secret, gets a new session");
    for (const secret of [undefined, "A".repeat(43), confirmed.resume_secret.slice(1)]) {
      const other = scriptClient();
      others.push(other);
      const theirs = await other.open({ session_id: id, resume_secret: secret });
      assert.notEqual(theirs.session_id, id);
      other.client.emit("user_uttered", { session_id: id, message: "こんにちは" });
    }
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(messages.length, before, "another socket's words reached this session");
    assert.equal(got.takenOver, 0);

    step("the secret resumes the session once: rotated, and the first socket is told");
    const taker = scriptClient();
    others.push(taker);
    const resumed = await taker.open({ session_id: id, resume_secret: confirmed.resume_secret });
    assert.equal(resumed.session_id, id);
    assert.notEqual(resumed.resume_secret, confirmed.resume_secret);
    const deadline = Date.now() + 10_000;
    while (!got.disconnected && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(got.takenOver, 1);
    assert.ok(got.disconnected, "the first socket was not disconnected");
    const replay = scriptClient();
    others.push(replay);
    const replayed = await replay.open({ session_id: id, resume_secret: confirmed.resume_secret });
    assert.notEqual(replayed.session_id, id, "an old secret resumed the session");
    assert.equal(taker.got.takenOver, 0);
  } finally {
    client.close();
    for (const other of others) other.client.close();
  }
}

const [scenario, viewport = "1280x800"] = process.argv.slice(2);
mkdirSync(ARTIFACT_DIR, { recursive: true });
const scenarios = { conversation: () => conversation(viewport), idle, sessions, socket };
if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}: ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
await scenarios[scenario]();
const label = scenario === "conversation" ? `${scenario} ${viewport}` : scenario;
console.log(`${label}: all checks passed`);
