// axe-core in the page under test: the accessibility check of the browser specs.
//
// The script is evaluated in the page through playwright (the devtools protocol), not
// added as a <script> tag: the console's Content-Security-Policy (script-src 'self')
// refuses inline scripts, and must stay as it is while the page is checked. Every rule
// axe-core runs by default counts; a violation of any impact fails the check.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/** The axe-core violations of the page as it is now: [{id, impact, help, nodes}]. */
export async function axeViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) {
    await page.evaluate(AXE_SOURCE);
  }
  return page.evaluate(async () => {
    const results = await window.axe.run(document, { resultTypes: ["violations"] });
    return results.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target.join(" "), html: n.html.slice(0, 200) })),
    }));
  });
}

/** The violations as lines a person can act on. */
export function describeViolations(label, violations) {
  const lines = [`${label}: ${violations.length} axe-core violation(s)`];
  for (const v of violations) {
    lines.push(`  [${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})`);
    for (const node of v.nodes) lines.push(`      ${node.target}  ${node.html}`);
  }
  return lines.join("\n");
}

/** Fail, listing every violation, unless axe-core finds none on the page. */
export async function assertAccessible(page, label) {
  const violations = await axeViolations(page);
  if (violations.length > 0) throw new Error(describeViolations(label, violations));
  console.log(`axe ${label}: no violations`);
}
