// Drives the console in Debian's chromium: a browser's visit of / lands on it; a pipeline's
// execution, released from the page, moves live (no reload) to its approval; the approval is
// approved from the page with a comment and the execution succeeds; a transition is disabled
// from the page with a reason; a running build's log grows on its page. Writes a screenshot of
// the pipeline page.
// Usage: node console.mjs ENDPOINT APPROVAL_PIPELINE BUILD_PIPELINE SCREENSHOT
import { chromium } from "playwright-core";

const [endpoint, pipeline, buildPipeline, screenshot] = process.argv.slice(2);
const WAIT = 60_000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
// A zone other than the server's UTC: the page shows times in the browser's zone.
const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, timezoneId: "Asia/Tokyo" });
page.setDefaultTimeout(WAIT);

async function step(what, run) {
  try {
    await run();
    console.log("ok: " + what);
  } catch (e) {
    console.log("FAIL: " + what + ": " + e.message);
    await page.screenshot({ path: screenshot.replace(/\.png$/, "-failure.png"), fullPage: true }).catch(() => {});
    await browser.close();
    process.exit(1);
  }
}

// Follows a link to a page and waits until its script runs (a deferred script runs before
// DOMContentLoaded): a button clicked before that would do nothing.
async function visit(link, heading) {
  await link.click();
  await page.getByRole("heading", { name: heading, level: 1, exact: true }).waitFor();
  await page.waitForLoadState("domcontentloaded");
}

const stage = (name) => page.getByRole("region", { name: "Stage " + name });
const action = (name) => page.getByRole("article", { name: "Action " + name });
// The status word (with its icon) shown in a part of the page.
const status = (within, word) => within.locator(".status").filter({ hasText: word }).first();

await step("a browser's visit of / opens the console", async () => {
  await page.goto(endpoint + "/");
  if (!page.url().endsWith("/_console/")) throw new Error("landed on " + page.url());
  await page.getByRole("heading", { name: "Pipelines" }).waitFor();
});

await step("the pipelines list links the pipeline", async () => {
  await visit(page.getByRole("link", { name: pipeline, exact: true }), pipeline);
});

await step("times are shown in the browser's zone, UTC in their title", async () => {
  const shown = page.locator("time").first();
  await shown.waitFor();
  const [text, title, at] = await shown.evaluate((t) => [t.textContent, t.title, t.getAttribute("datetime")]);
  const expected = new Date(new Date(at).getTime() + 9 * 3600 * 1000).toISOString().slice(0, 19).replace("T", " ");
  if (text !== expected + " GMT+9") throw new Error(`shown ${text}, expected ${expected} GMT+9 (${at})`);
  if (!title.endsWith(" UTC")) throw new Error("title " + title);
});

// A mark on the window: it survives only if the page is never reloaded.
await page.evaluate(() => { window.__sameDocument = true; });

await step("Release change starts an execution that moves live to the approval", async () => {
  await page.getByRole("button", { name: "Release change" }).click();
  await status(action("Gate"), "InProgress").waitFor();
  await action("Gate").getByRole("button", { name: "Review" }).waitFor();
  await status(stage("Source"), "Succeeded").waitFor();
});

await step("the approval is approved from the page with a comment", async () => {
  await action("Gate").getByRole("button", { name: "Review" }).click();
  const dialog = page.getByRole("dialog", { name: "Review Gate" });
  await dialog.getByLabel("Comment").fill("Ship it, from the console");
  await dialog.getByRole("button", { name: "Approve" }).click();
  await status(action("Deploy"), "Succeeded").waitFor();
  await action("Gate").getByText("Approved: Ship it, from the console").waitFor();
});

await step("the page was never reloaded", async () => {
  if (!(await page.evaluate(() => window.__sameDocument === true))) throw new Error("the page was reloaded");
});

await step("a transition is disabled from the page with a reason", async () => {
  await page.getByRole("button", { name: "Disable transition" }).last().click();
  const dialog = page.getByRole("dialog", { name: "Disable the transition to Deploy" });
  // A reason is required: without one, nothing is sent.
  await dialog.getByRole("button", { name: "Disable" }).click();
  await page.getByRole("alert").getByText("Reason is required.").waitFor();
  await dialog.getByLabel("Reason").fill("Release freeze");
  await dialog.getByRole("button", { name: "Disable" }).click();
  await page.getByText("Transition to Deploy disabled: Release freeze").waitFor();
  await page.getByRole("button", { name: "Enable transition" }).waitFor();
});

await step("the pipeline page is usable by keyboard, and keeps the focus while it moves", async () => {
  const release = page.getByRole("button", { name: "Release change" });
  await release.focus();
  await page.keyboard.press("Enter");
  // The execution the key released reaches the approval; the page is drawn again on the way.
  await action("Gate").getByRole("button", { name: "Review" }).waitFor();
  // One look inside the page (the button may be drawn again between two looks from outside).
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent.trim());
  if (focused !== "Release change") throw new Error("the focus was lost: it is on " + focused);
});

await step("a screenshot of the pipeline page is written", async () => {
  await page.screenshot({ path: screenshot, fullPage: true });
});

await step("a running build's log grows on its page", async () => {
  await page.goto(endpoint + "/_console/");
  await visit(page.getByRole("link", { name: buildPipeline, exact: true }), buildPipeline);
  await page.getByRole("button", { name: "Release change" }).click();
  await page.getByRole("link", { name: "Build log" }).click();
  const log = page.locator("#log");
  await log.getByText("first line").waitFor();
  await page.getByText("Running…").waitFor();
  // The log was read while the build ran, then grew to its end.
  await log.getByText("last line").waitFor();
  await page.getByText("Complete.").waitFor();
});

await step("a narrow window shows the stages one under another", async () => {
  await page.setViewportSize({ width: 420, height: 800 });
  await page.goto(endpoint + "/_console/");
  await visit(page.getByRole("link", { name: pipeline, exact: true }), pipeline);
  const boxes = await page.locator("section.stage").evaluateAll((els) => els.map((e) => e.getBoundingClientRect().x));
  if (new Set(boxes.map(Math.round)).size !== 1) throw new Error("stages side by side: " + boxes);
});

await browser.close();
