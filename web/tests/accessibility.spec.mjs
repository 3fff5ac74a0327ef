// axe-core on a list of pages, in a real headless Chromium (Debian's) driven by
// playwright-core: tests/e2e/browser.py's assert_accessible runs it.
//
//   AXE_PAGES='[{"label": "queue", "url": "http://127.0.0.1:5002/queue",
//                "account": ["tanaka", "…"], "ready": null}, …]' \
//     node web/tests/accessibility.spec.mjs
//
// A page with an account is opened signed in to the staff console as that person (one
// browser context per account, signed in through the console's own form at /login of
// the page's origin); `ready` is a selector to wait for before checking (the chat's
// connection, a poll's first answer). The page must be the one asked for (no redirect
// to the sign-in page) and answer 2xx. Every page is checked even after a failure;
// the exit status is 1 if any had a violation, with each violation listed.

import assert from "node:assert/strict";

import { assertAccessible } from "./axe.mjs";
import { env, launch, step } from "./chat-page.mjs";

const PAGES = JSON.parse(env("AXE_PAGES"));

async function signedIn(browser, contexts, origin, [name, password]) {
  const key = `${origin} ${name}`;
  if (!contexts.has(key)) {
    const context = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      locale: "ja-JP",
    });
    const page = await context.newPage();
    await page.goto(new URL("/login", origin).href);
    await page.getByLabel("名前").fill(name);
    await page.getByLabel("パスワード").fill(password);
    await page.getByRole("button", { name: "サインイン" }).click();
    await page.waitForURL((url) => url.pathname !== "/login");
    await page.close();
    contexts.set(key, context);
  }
  return contexts.get(key);
}

async function check(browser, contexts, spec) {
  const origin = new URL(spec.url).origin;
  const context = spec.account
    ? await signedIn(browser, contexts, origin, spec.account)
    : await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "ja-JP" });
  const page = await context.newPage();
  try {
    const response = await page.goto(spec.url);
    const status = response ? response.status() : "nothing";
    assert.ok(response && response.ok(), `${spec.label}: answered ${status}`);
    const wanted = new URL(spec.url);
    const landed = new URL(page.url());
    assert.equal(landed.pathname + landed.search, wanted.pathname + wanted.search, spec.label);
    if (spec.ready) await page.waitForSelector(spec.ready, { timeout: 60_000 });
    await assertAccessible(page, spec.label);
  } finally {
    await page.close();
    if (!spec.account) await context.close();
  }
}

const browser = await launch();
const failures = [];
try {
  const contexts = new Map();
  for (const spec of PAGES) {
    step(`${spec.label}: ${spec.url}`);
    try {
      await check(browser, contexts, spec);
    } catch (error) {
      failures.push(error.message);
      console.log(error.message);
    }
  }
} finally {
  await browser.close();
}
if (failures.length > 0) {
  console.error(failures.join("\n\n"));
  process.exit(1);
}
console.log(`accessibility: ${PAGES.length} pages, no violations`);
