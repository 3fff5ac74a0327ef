// The staff console and the website chat together in a real headless Chromium (Debian's),
// driven by playwright-core.
//
// Run by tests/e2e/test_console_browser.py against the running servers (the action
// server, the rasa server, the website chat's page and the staff console):
//
//   node web/tests/console.spec.mjs handoff
//
// A staff member signs in to the console and keeps the queue open; a member on the
// website chat asks for a person, and the open queue shows it without a reload (the
// title counts it, a polite live region announces it); staff claim the conversation,
// read the member's request in the transcript and reply; the member sees the reply in
// the chat; the member writes again and the console shows it without a reload; staff
// hand back, the member is told so in the chat, and the assistant answers again. Two
// browser contexts, one per person: nothing is shared between them.
// Environment: WEBCHAT_URL, CONSOLE_URL, STAFF_NAME, STAFF_PASSWORD, HANDBACK_NOTICE,
// ARTIFACT_DIR, CHROMIUM. Exit status 0 when every check passed; each step is printed as it runs.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import {
  ANSWER_TIMEOUT_MS,
  answerAfter,
  botTexts,
  connected,
  conversationId,
  env,
  launch,
  say,
  send,
  step,
} from "./chat-page.mjs";

const WEBCHAT_URL = env("WEBCHAT_URL");
const CONSOLE_URL = env("CONSOLE_URL");
const STAFF_NAME = env("STAFF_NAME");
const STAFF_PASSWORD = env("STAFF_PASSWORD");
const ARTIFACT_DIR = env("ARTIFACT_DIR");
// What the member is told at the hand back, in the organization's words.
const HANDBACK_NOTICE = env("HANDBACK_NOTICE");
// The console polls for new lines every 3 s; a line may take a few polls to come.
const POLL_TIMEOUT_MS = 30_000;

const ASK_FOR_PERSON = "担当者と話したい";
const HANDED_OVER = "担当者におつなぎします";
const REPLY = "担当の田中です。ご用件を伺います。";
const STAFF_PREFIX = "担当者より：";
const MEMBER_AGAIN = "昨年の医療費通知の送り先について相談したいです";
const POLICY_QUESTION = "個人情報の利用目的を教えてください";

// --- the staff side ------------------------------------------------------------------------

async function notice(page, text) {
  const shown = (await page.textContent("main .notice")) || "";
  assert.ok(shown.includes(text), `notice: ${shown}`);
}

async function transcriptText(page) {
  return (await page.textContent("#transcript")) || "";
}

function watchProblems(page, problems, who) {
  page.on("console", (m) => m.type() === "error" && problems.push(`${who}: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`${who}: ${e}`));
}

async function handoff() {
  const browser = await launch();
  try {
    const member = await browser.newContext({
      viewport: { width: 360, height: 740 },
      locale: "ja-JP",
    });
    const staff = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      locale: "ja-JP",
    });
    const chat = await member.newPage();
    const desk = await staff.newPage();
    const problems = [];
    watchProblems(chat, problems, "chat");
    watchProblems(desk, problems, "console");

    step("staff: the console asks for a sign-in, then shows the queue");
    await desk.goto(new URL("/queue", CONSOLE_URL).href);
    await desk.waitForURL(/\/login/);
    await desk.getByLabel("名前").fill(STAFF_NAME);
    await desk.getByLabel("パスワード").fill(STAFF_PASSWORD);
    await desk.getByRole("button", { name: "サインイン" }).click();
    await desk.waitForURL(/\/queue/);
    const cookies = await staff.cookies();
    const session = cookies.find((c) => c.name === "console_session");
    assert.ok(session, "no console_session cookie");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");

    step("staff: the open queue has nobody waiting yet");
    assert.ok(!/^\(\d+\)/.test(await desk.title()), await desk.title());
    await desk.evaluate(() => {
      window.__sameDocument = true; // gone if the page reloads
    });

    step("member: the first request for a person is answered with an offer");
    await chat.goto(WEBCHAT_URL);
    await connected(chat);
    const offer = await say(chat, ASK_FOR_PERSON);
    assert.ok(!offer.includes(HANDED_OVER), offer);
    const offered = chat.locator("#log .quick-replies button.quick-reply", {
      hasText: ASK_FOR_PERSON,
    });

    step("member: the offered quick reply (or asking again) hands the conversation over");
    let handed;
    if ((await offered.count()) > 0) {
      const before = (await botTexts(chat)).length;
      await offered.last().click();
      handed = await answerAfter(chat, before);
    } else {
      handed = await say(chat, ASK_FOR_PERSON);
    }
    assert.ok(handed.includes(HANDED_OVER), handed);
    console.log(`member session: ${await conversationId(chat)}`);

    step("staff: the open queue shows the hand-off by itself, counts it, announces it");
    await desk.waitForFunction(
      () => document.querySelectorAll("#queue-live tr[data-waiting]").length === 1,
      null,
      { timeout: POLL_TIMEOUT_MS },
    );
    await desk.waitForFunction(() => document.title.startsWith("(1) "), null, {
      timeout: POLL_TIMEOUT_MS,
    });
    const announced = (await desk.textContent("#queue-announcer")) || "";
    assert.match(
      announced,
      /^新しく対応待ちになった案件があります：#\d+（担当者希望・Webチャット）$/,
      announced,
    );
    assert.equal(await desk.getAttribute("#queue-announcer", "aria-live"), "polite");
    assert.equal(await desk.evaluate(() => window.__sameDocument), true, "the queue page reloaded");

    step("staff: the queue shows the member's request, waiting");
    const waiting = desk.locator("section", { has: desk.locator("h2", { hasText: "対応待ち" }) });
    const links = waiting.locator('a[href^="/escalations/"]');
    assert.equal(await links.count(), 1, "one waiting escalation expected");
    const row = waiting.locator("tbody tr").first();
    const rowText = await row.textContent();
    assert.ok(rowText.includes("担当者希望"), rowText);
    assert.ok(rowText.includes("Webチャット"), rowText);
    const href = await links.first().getAttribute("href");
    const shotQueue = join(ARTIFACT_DIR, "console-queue-1280x800.png");
    await desk.screenshot({ path: shotQueue, fullPage: false });
    console.log(`screenshot: ${shotQueue}`);

    step("staff: the escalation page shows the member's words in the transcript");
    await links.first().click();
    await desk.waitForURL(new RegExp(`${href}$`));
    assert.ok((await transcriptText(desk)).includes(ASK_FOR_PERSON));
    assert.ok((await transcriptText(desk)).includes(HANDED_OVER));
    assert.equal(await desk.locator("form#reply").count(), 0, "a reply form before claiming");

    step("staff: claims the conversation");
    await desk.getByRole("button", { name: "担当する" }).click();
    await desk.waitForURL(/notice=claimed/);
    await notice(desk, "この案件の担当になりました");
    assert.ok(((await desk.textContent("h1")) || "").includes("対応中"));

    step("staff: replies; the console confirms it was sent");
    await desk.getByLabel("お客さまへの返信").fill(REPLY);
    await desk.getByRole("button", { name: "送信する" }).click();
    await desk.waitForURL(/notice=sent/);
    await notice(desk, "メッセージを送信しました");

    step("member: the reply appears in the chat, marked as from staff");
    await chat.waitForFunction(
      (text) =>
        [...document.querySelectorAll("#log .msg--bot")].some((n) => n.textContent.includes(text)),
      REPLY,
      { timeout: ANSWER_TIMEOUT_MS },
    );
    const shown = (await botTexts(chat)).find((text) => text.includes(REPLY));
    assert.ok(shown.includes(STAFF_PREFIX + REPLY), shown);
    const shotChat = join(ARTIFACT_DIR, "console-member-chat-360x740.png");
    await chat.screenshot({ path: shotChat, fullPage: false });
    console.log(`screenshot: ${shotChat}`);

    step("member: writes again; the assistant stays silent (staff have the conversation)");
    const botCount = (await botTexts(chat)).length;
    await desk.evaluate(() => {
      window.__sameDocument = true; // gone if the page reloads
    });
    await send(chat, MEMBER_AGAIN);

    step("staff: the new line appears in the transcript without a reload");
    await desk.waitForFunction(
      (text) => {
        const lines = document.querySelectorAll("#transcript li.line.member.new");
        return [...lines].some((n) => n.textContent.includes(text));
      },
      MEMBER_AGAIN,
      { timeout: POLL_TIMEOUT_MS },
    );
    assert.equal(await desk.evaluate(() => window.__sameDocument), true, "the page reloaded");
    const staffLine = desk.locator("#transcript li.line.staff", { hasText: REPLY });
    assert.ok((await staffLine.count()) >= 1, "the staff reply is not in the transcript");
    assert.ok(((await staffLine.first().textContent()) || "").includes(STAFF_NAME));
    assert.equal((await botTexts(chat)).length, botCount, "the assistant answered while paused");
    const shotDesk = join(ARTIFACT_DIR, "console-escalation-1280x800.png");
    await desk.screenshot({ path: shotDesk, fullPage: false });
    console.log(`screenshot: ${shotDesk}`);

    step("staff: hand back to the assistant (after confirming) and the case is closed");
    desk.once("dialog", (dialog) => dialog.accept());
    await desk.getByRole("button", { name: "アシスタントに戻して完了" }).click();
    await desk.waitForURL(/notice=handed_back/);
    await notice(desk, "会話をアシスタントに戻し");
    assert.ok(((await desk.textContent("h1")) || "").includes("完了"));

    step("member: is told in the chat that the assistant answers again");
    await chat.waitForFunction(
      (text) =>
        [...document.querySelectorAll("#log .msg--bot")].some((n) => n.textContent.includes(text)),
      HANDBACK_NOTICE,
      { timeout: ANSWER_TIMEOUT_MS },
    );

    step("member: a policy question gets the assistant's sourced answer again");
    const answer = await say(chat, POLICY_QUESTION);
    assert.ok(answer.includes("出典"), answer);

    step("staff: the queue no longer lists the conversation as waiting");
    await desk.goto(new URL("/queue", CONSOLE_URL).href);
    assert.equal(await desk.locator(`a[href="${href}"]`).count(), 0);

    assert.deepEqual(problems, [], `browser errors: ${problems.join("; ")}`);
  } finally {
    await browser.close();
  }
}

const [scenario] = process.argv.slice(2);
mkdirSync(ARTIFACT_DIR, { recursive: true });
const scenarios = { handoff };
if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}: ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
await scenarios[scenario]();
console.log(`${scenario}: all checks passed`);
