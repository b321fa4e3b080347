// Drives the demo page in headless Chromium (Debian's, through playwright-core) and reports what a
// person would have seen, as one JSON object on stdout. tests/browser/test_demo_page.py runs it.
//
//   node tests/browser/drive-demo.mjs '{"url": "http://127.0.0.1:3000/demo/", "message": "...",
//                                       "screenshot": "test-artifacts/demo-page.png"}'
//
// It signs in, sends the message, and snapshots the last assistant message's text from outside the
// page (one `page.evaluate` after another) until it stops streaming. Every step has a time limit.

import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { chromium } from "playwright-core";

const options = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  message: "I did 5x5 squats at 100kg today, how should I progress?",
  timeoutMs: 30_000,
  ...JSON.parse(process.argv[2] || "{}"),
};
if (!options.url) throw new Error("usage: drive-demo.mjs '{\"url\": \"http://127.0.0.1:PORT/demo/\"}'");

// As python.md says for this machine: root needs --no-sandbox, and without the background-networking
// flags Chromium keeps trying hosts the closed network refuses.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const LAST_REPLY = "#messages .message.assistant:last-child";

const report = { snapshots: [], console: [], pageErrors: [], timings: {} };
const started = performance.now();
const mark = (name) => {
  report.timings[name] = Math.round(performance.now() - started);
};

const browser = await chromium.launch({
  executablePath: options.executablePath,
  headless: true,
  args: CHROMIUM_ARGS,
  timeout: options.timeoutMs,
});
mark("launched");
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 820 }, deviceScaleFactor: 1 });
  page.setDefaultTimeout(options.timeoutMs);
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      report.console.push(`${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => report.pageErrors.push(String(error)));

  await page.goto(options.url, { waitUntil: "load" });
  await page.waitForSelector("html[data-ready=true]");
  mark("loaded");

  await page.click("#sign-in");
  await page.waitForSelector("#app[data-signed-in=true]");
  await page.waitForSelector("#send:not([disabled])");
  mark("signedIn");

  await page.fill("#message", options.message);
  await page.click("#send");
  await page.waitForSelector(`${LAST_REPLY}[data-status]`);
  mark("sent");

  // Snapshots of the growing reply, as fast as the page answers, until it is no longer streaming.
  const deadline = performance.now() + options.timeoutMs;
  let screenshotTaken = false;
  for (;;) {
    const snapshot = await page.evaluate((selector) => {
      const reply = document.querySelector(selector);
      return {
        text: reply?.querySelector(".text")?.textContent ?? "",
        status: reply?.dataset.status ?? "",
        cursor: Boolean(reply?.querySelector(".cursor")),
        contextual: [...(reply?.querySelectorAll(".contextual li") ?? [])].map((li) => li.textContent),
      };
    }, LAST_REPLY);
    snapshot.ms = Math.round(performance.now() - started);
    report.snapshots.push(snapshot);
    if (snapshot.status !== "streaming") break;
    if (!screenshotTaken && options.streamingScreenshot && snapshot.text.length > 40) {
      screenshotTaken = true;
      await saveScreenshot(page, options.streamingScreenshot);
    }
    if (performance.now() > deadline) throw new Error("the reply was still streaming at the time limit");
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
  mark("finished");

  report.final = await page.evaluate((selector) => {
    const reply = document.querySelector(selector);
    return {
      text: reply.querySelector(".text").textContent,
      status: reply.dataset.status,
      transport: reply.dataset.transport ?? null,
      cursor: Boolean(reply.querySelector(".cursor")),
      contextualOpen: [...reply.querySelectorAll(".contextual")].some((list) => list.checkVisibility()),
      meta: reply.querySelector(".meta")?.textContent ?? "",
      error: document.querySelector("#error")?.hidden ? null : document.querySelector("#error-text")?.textContent,
      conversationId: window.coachDemo?.state.chat.conversationId ?? null,
    };
  }, LAST_REPLY);

  if (options.screenshot) await saveScreenshot(page, options.screenshot);
  mark("screenshot");
} finally {
  await browser.close();
}

process.stdout.write(JSON.stringify(report) + "\n");

async function saveScreenshot(page, path) {
  mkdirSync(dirname(path), { recursive: true });
  await page.screenshot({ path, fullPage: true });
}
