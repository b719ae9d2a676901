// Drives Debian's chromium (headless, through playwright-core from var/js) against GraphiQL
// at GRAPHIQL_URL: waits for the IDE, types QUERY into the editor, runs it, and reads the
// result panel. Prints one JSON line: {ok, resultText, requests, consoleErrors, screenshot}.
// Every URL the page asked for is reported, so the caller can assert that none left the
// gateway. On failure a screenshot is saved under SCREENSHOT_DIR (a temporary folder).
// Run with NODE_PATH=var/js/node_modules.
"use strict";

const path = require("node:path");
const { chromium } = require("playwright-core");

const url = process.env.GRAPHIQL_URL;
const query = process.env.QUERY;
const expected = process.env.EXPECTED_TEXT;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const screenshotDir = process.env.SCREENSHOT_DIR;
const userDataDir = process.env.USER_DATA_DIR;
const TIMEOUT = 60_000;

async function main() {
  const requests = [];
  const consoleErrors = [];
  const report = { ok: false, resultText: "", requests, consoleErrors, screenshot: null };
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("request", (request) => requests.push(request.url()));
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  try {
    await page.goto(url, { waitUntil: "load", timeout: TIMEOUT });
    const editor = page.locator(".graphiql-query-editor .CodeMirror").first();
    await editor.waitFor({ state: "visible", timeout: TIMEOUT });
    await editor.click();
    await page.keyboard.press("Control+A");
    await page.keyboard.press("Delete");
    // insertText types the text as input (no key events), so the editor's bracket
    // auto-closing does not add a second "}" after each "{".
    await page.keyboard.insertText(query);
    await page.locator("button.graphiql-execute-button").click();
    const result = page.locator(".graphiql-response");
    await page.waitForFunction(
      (text) => {
        const panel = document.querySelector(".graphiql-response");
        return panel !== null && panel.innerText.includes(text);
      },
      expected,
      { timeout: TIMEOUT },
    );
    report.resultText = await result.innerText();
    report.ok = true;
  } catch (error) {
    report.error = String(error);
    try {
      report.resultText = await page.locator(".graphiql-response").innerText({ timeout: 1000 });
    } catch (_) {
      /* no result panel */
    }
    if (screenshotDir) {
      report.screenshot = path.join(screenshotDir, "graphiql-failure.png");
      await page.screenshot({ path: report.screenshot, fullPage: true }).catch(() => {});
    }
  } finally {
    await context.close();
  }
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((error) => {
  process.stdout.write(JSON.stringify({ ok: false, error: String(error) }) + "\n");
  process.exit(1);
});
