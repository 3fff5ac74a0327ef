// The website chat in a real headless Chromium (Debian's), driven by playwright-core.
//
// Run by tests/e2e/test_webchat_browser.py against the running servers:
//
//   node web/tests/webchat.spec.mjs <scenario> [WIDTHxHEIGHT]
//
// scenarios: conversation (the member's whole visit, at one viewport), idle (a fresh
// session after the idle timeout), socket (the channel guard, without a browser).
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
  env,
  launch,
  say,
  sessionId,
  step,
} from "./chat-page.mjs";

const WEBCHAT_URL = env("WEBCHAT_URL");
const RASA_URL = env("RASA_URL");
const RASA_TOKEN = env("RASA_TOKEN");
const ARTIFACT_DIR = env("ARTIFACT_DIR");
const ORG_NAME = "国際興業健康保険組合";
const GREETING = "アシスタントです";

async function userTexts(page) {
  return page.$$eval("#log .msg--user", (nodes) =>
    nodes.map((n) => n.textContent.replace(/^あなた: /, "")),
  );
}

/** A bot message sent through Rasa's HTTP API to the page's conversation. */
async function sendAsBot(id, text) {
  const url = new URL(`/conversations/${id}/tracker/events`, RASA_URL);
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
      id,
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
    await page.reload();
    await connected(page);
    assert.equal(await sessionId(page), id);
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

/** The channel itself, spoken to as a script would, not through the widget. */
async function socket() {
  const client = io(RASA_URL, { transports: ["websocket"], reconnection: false });
  const messages = [];
  client.on("bot_uttered", (message) => messages.push(message));
  const confirmed = new Promise((resolve) => client.on("session_confirm", resolve));
  client.on("connect", () => client.emit("session_request", { session_id: "not-ours" }));
  try {
    const id = await confirmed;
    step("an id not issued by the channel is replaced by a fresh one");
    assert.match(id, /^[0-9a-f]{32}$/);

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
  } finally {
    client.close();
  }
}

const [scenario, viewport = "1280x800"] = process.argv.slice(2);
mkdirSync(ARTIFACT_DIR, { recursive: true });
const scenarios = { conversation: () => conversation(viewport), idle, socket };
if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}: ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
await scenarios[scenario]();
const label = scenario === "conversation" ? `${scenario} ${viewport}` : scenario;
console.log(`${label}: all checks passed`);
