// The privacy officer's overview (/insights) in a real headless Chromium (Debian's),
// driven by playwright-core.
//
// Run by tests/e2e/test_insights_browser.py against a running console:
//
//   node web/tests/insights.spec.mjs
//
// The officer signs in, opens the overview on a laptop screen and on a phone: every
// chart is drawn (inline SVG from the server) with no Content-Security-Policy violation
// and no script error, fits the screen, and its text is at least 9 px high; the list of
// messages the assistant did not understand shows them masked. Environment:
// CONSOLE_URL, STAFF_NAME, STAFF_PASSWORD, ARTIFACT_DIR, CHROMIUM, CLEAR_VALUE (a value
// the seed wrote in clear that must never appear). Exit status 0 when every check passed.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { env, launch, step } from "./chat-page.mjs";

const CONSOLE_URL = env("CONSOLE_URL");
const STAFF_NAME = env("STAFF_NAME");
const STAFF_PASSWORD = env("STAFF_PASSWORD");
const ARTIFACT_DIR = env("ARTIFACT_DIR");
const CLEAR_VALUE = env("CLEAR_VALUE");
const CHARTS = 8;
const MIN_TEXT_PX = 9;

const SCREENS = [
  { name: "laptop", width: 1280, height: 800 },
  { name: "phone", width: 360, height: 740 },
];

async function watched(context, problems, who) {
  // Before any page script: a violation of the CSP is reported as an event.
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.__violations = window.__violations || [];
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  page.on("console", (m) => m.type() === "error" && problems.push(`${who}: ${m.text()}`));
  page.on("pageerror", (e) => problems.push(`${who}: ${e}`));
  return page;
}

async function signIn(page) {
  await page.goto(new URL("/insights?days=30", CONSOLE_URL).href);
  await page.waitForURL(/\/login/);
  await page.getByLabel("名前").fill(STAFF_NAME);
  await page.getByLabel("パスワード").fill(STAFF_PASSWORD);
  await page.getByRole("button", { name: "サインイン" }).click();
  await page.waitForURL(/\/insights\?days=30/);
}

async function chartsOn(page, screen) {
  const charts = await page.$$eval("svg.chart", (nodes) =>
    nodes.map((svg) => {
      const box = svg.getBoundingClientRect();
      const heights = [...svg.querySelectorAll("text")].map(
        (t) => t.getBoundingClientRect().height,
      );
      return {
        title: svg.querySelector("title")?.textContent || "",
        left: box.left,
        right: box.right,
        width: box.width,
        height: box.height,
        texts: heights.length,
        smallest: Math.min(...heights),
        shapes: svg.querySelectorAll("rect, polyline, circle").length,
      };
    }),
  );
  assert.equal(charts.length, CHARTS, `${screen.name}: ${charts.length} charts`);
  for (const chart of charts) {
    assert.ok(chart.width > 200 && chart.height > 60, `${screen.name} ${chart.title}: too small`);
    assert.ok(chart.left >= 0 && chart.right <= screen.width, `${screen.name} ${chart.title}: off screen`);
    assert.ok(chart.texts > 0 && chart.smallest >= MIN_TEXT_PX, `${screen.name} ${chart.title}: text ${chart.smallest} px`);
    assert.ok(chart.shapes > 0, `${screen.name} ${chart.title}: nothing drawn`);
  }
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${screen.name}: the page scrolls sideways by ${overflow} px`);
  return charts;
}

async function main() {
  mkdirSync(ARTIFACT_DIR, { recursive: true });
  const browser = await launch();
  const problems = [];
  try {
    for (const screen of SCREENS) {
      const context = await browser.newContext({
        viewport: { width: screen.width, height: screen.height },
        locale: "ja-JP",
      });
      const page = await watched(context, problems, screen.name);
      step(`${screen.name}: the officer signs in and opens the overview`);
      await signIn(page);
      assert.ok(((await page.textContent("h1")) || "").includes("利用状況"));
      step(`${screen.name}: ${CHARTS} charts drawn, on the screen, text readable`);
      const charts = await chartsOn(page, screen);
      console.log(
        `${screen.name}: smallest chart text ${Math.min(...charts.map((c) => c.smallest)).toFixed(1)} px`,
      );
      const violations = await page.evaluate(() => window.__violations || []);
      assert.deepEqual(violations, [], `${screen.name}: CSP violations`);
      const shot = join(ARTIFACT_DIR, `insights-${screen.width}x${screen.height}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      console.log(`screenshot: ${shot}`);

      step(`${screen.name}: the numbers open as a table`);
      await page.locator("details summary").first().click();
      assert.ok(await page.locator("details[open] table.figures").first().isVisible());

      step(`${screen.name}: the messages not understood are listed, masked`);
      await page.getByRole("link", { name: "「理解できなかったメッセージ」" }).click();
      await page.waitForURL(/\/insights\/unanswered/);
      const listed = (await page.textContent("main")) || "";
      assert.ok(listed.includes("まとまり1"), "no group listed");
      assert.ok(!listed.includes(CLEAR_VALUE), "a value in clear");
      assert.ok(listed.includes("［電話番号］"), "no masked phone number");
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${screen.name}: the list scrolls sideways by ${overflow} px`);
      assert.deepEqual(await page.evaluate(() => window.__violations || []), []);
      await context.close();
    }
    assert.deepEqual(problems, [], "errors in the pages");
    console.log("all checks passed");
  } finally {
    await browser.close();
  }
}

await main();
