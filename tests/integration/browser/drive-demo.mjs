// Drives the demo page in headless Chromium (Debian's, through playwright-core) and reports what a
// person would have seen, as one JSON object on stdout. tests/integration/browser/test_demo_page.py runs it.
//
//   node tests/integration/browser/drive-demo.mjs '{"url": "http://127.0.0.1:3000/demo/", "flow": "chat",
//                                       "message": "...", "screenshot": "test-artifacts/demo-page.png"}'
//
// flow "chat" (the default): sign in, send the message, and snapshot the last assistant message
// from outside the page (one `page.evaluate` after another) until it stops streaming (or
// recovering). With "dropAfterFirstChunk": true the page's fetch drops the reply stream's
// connection after its first chunk (web/test/dropping-fetch.mjs), so the page must recover the reply.
// The report lists every request the page made (`requests`: method and path).
// flow "creator": sign in, answer the coach creator's questions until the interview is complete,
// wait for "Talk to your new coach", click it, and send one message to the new coach.
// Every step has a time limit; any failure exits non-zero with the message on stderr.

import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { chromium } from "playwright-core";

import { dropStreamAfterFirstChunk } from "../../../web/test/dropping-fetch.mjs";

const options = {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  flow: "chat",
  message: "I did 5x5 squats at 100kg today, how should I progress?",
  answer: "I train three days a week and my left knee gets sore on deep squats.",
  maxAnswers: 20,
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

const report = { flow: options.flow, console: [], pageErrors: [], requests: [], timings: {} };
const started = performance.now();
const elapsed = () => Math.round(performance.now() - started);
const mark = (name) => {
  report.timings[name] = elapsed();
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
  page.on("request", (request) => report.requests.push({ method: request.method(), path: new URL(request.url()).pathname }));
  if (options.dropAfterFirstChunk) {
    await page.addInitScript({ content: `window.fetch = (${dropStreamAfterFirstChunk})(window.fetch.bind(window));` });
  }

  await page.goto(options.url, { waitUntil: "load" });
  await page.waitForSelector("html[data-ready=true]");
  mark("loaded");

  await page.click("#sign-in");
  await page.waitForSelector("#app[data-signed-in=true]");
  await page.waitForSelector("#send:not([disabled])");
  report.signedInAs = await page.textContent("#who");
  mark("signedIn");

  if (options.flow === "creator") await creatorFlow(page);
  else await chatFlow(page);
} finally {
  await browser.close();
}

process.stdout.write(JSON.stringify(report) + "\n");

// --- the flows ---------------------------------------------------------------------------------

async function chatFlow(page) {
  report.snapshots = [];
  await page.fill("#message", options.message);
  await page.click("#send");
  await page.waitForSelector(`${LAST_REPLY}[data-status]`);
  mark("sent");

  const deadline = performance.now() + options.timeoutMs;
  let screenshotTaken = false;
  for (;;) {
    const snapshot = await page.evaluate(snapshotOf, LAST_REPLY);
    snapshot.ms = elapsed();
    report.snapshots.push(snapshot);
    if (snapshot.status !== "streaming" && snapshot.status !== "recovering") break;
    if (!screenshotTaken && options.streamingScreenshot && snapshot.text.length > 40) {
      screenshotTaken = true;
      await saveScreenshot(page, options.streamingScreenshot);
    }
    if (performance.now() > deadline) throw new Error("the reply was still streaming at the time limit");
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
  mark("finished");

  await page.waitForSelector("#send:not([disabled])"); // the turn is over: the page is ready again
  report.final = await page.evaluate(finalOf, LAST_REPLY);
  if (options.screenshot) await saveScreenshot(page, options.screenshot);
  mark("screenshot");
}

async function creatorFlow(page) {
  report.progress = [];
  await page.click("#tab-creator");
  await page.click("#creator-start");
  await page.waitForSelector("#creator-send:not([disabled])");
  report.firstQuestion = await page.textContent("#creator-messages .message.assistant:last-child .text");
  report.progress.push(await progressOf(page));
  mark("started");

  report.answers = 0;
  while (report.answers < options.maxAnswers) {
    await page.fill("#creator-answer", `${options.answer} (answer ${report.answers + 1})`);
    await page.click("#creator-send");
    report.answers += 1;
    await page.waitForFunction(() => !window.coachDemo.state.running);
    report.progress.push(await progressOf(page));
    const { complete } = await page.evaluate(() => window.coachDemo.state.creator);
    if (complete) break;
    const error = await page.evaluate(() => document.querySelector("#error:not([hidden])")?.textContent.trim());
    if (error) throw new Error(`the page showed an error: ${error}`);
  }
  mark("interviewed");

  await page.waitForSelector("#talk-to-coach:not([hidden])", { timeout: options.timeoutMs * 2 });
  report.ready = await page.textContent("#creator-done-text");
  report.coachId = await page.evaluate(() => window.coachDemo.state.creator.coachId);
  mark("coachReady");
  if (options.screenshot) await saveScreenshot(page, options.screenshot);

  await page.click("#talk-to-coach");
  await page.waitForSelector(`#chat-panel[data-coach-id="${report.coachId}"] #send:not([disabled])`);
  report.chat = await page.evaluate(() => ({
    ...window.coachDemo.state.chat,
    coachName: document.querySelector("#coach-name").textContent,
  }));
  await page.fill("#message", options.message);
  await page.click("#send");
  await page.waitForSelector(`${LAST_REPLY}:not([data-status=streaming])`);
  report.final = await page.evaluate(finalOf, LAST_REPLY);
  mark("talked");
}

// --- what is read from the page --------------------------------------------------------------------

function snapshotOf(selector) {
  const reply = document.querySelector(selector);
  return {
    text: reply?.querySelector(".text")?.textContent ?? "",
    status: reply?.dataset.status ?? "",
    cursor: Boolean(reply?.querySelector(".cursor")),
    contextual: [...(reply?.querySelectorAll(".contextual li") ?? [])].map((li) => li.textContent),
  };
}

function finalOf(selector) {
  const reply = document.querySelector(selector);
  const error = document.querySelector("#error");
  return {
    text: reply.querySelector(".text").textContent,
    status: reply.dataset.status,
    transport: reply.dataset.transport ?? null,
    cursor: Boolean(reply.querySelector(".cursor")),
    contextualVisible: [...reply.querySelectorAll(".contextual li")].some((li) => li.checkVisibility()),
    contextualCount: reply.querySelectorAll(".contextual li").length,
    meta: reply.querySelector(".meta")?.textContent ?? "",
    recovered: reply.dataset.recovered === "true",
    replyStatus: reply.dataset.replyStatus ?? null,
    error: error.hidden ? null : document.querySelector("#error-text").textContent,
    conversationId: window.coachDemo?.state.chat.conversationId ?? null,
  };
}

async function progressOf(page) {
  return page.evaluate(() => Number(document.querySelector("#creator-progress").dataset.percentage));
}

async function saveScreenshot(page, path) {
  mkdirSync(dirname(path), { recursive: true });
  await page.screenshot({ path, fullPage: true, animations: "disabled" });
}
