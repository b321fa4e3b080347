// Tests of web/coach-stream-client.js with Node's test runner: `node --test web/test/`.
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import { describe, test } from "node:test";

import {
  CoachStreamError,
  createSseParser,
  errorFromResponse,
  fetchConfig,
  streamCoachConversation,
  streamCoachCreatorSession,
} from "../coach-stream-client.js";

const encoder = new TextEncoder();

// --- the parser ------------------------------------------------------------------------------

/** A sample stream with everything the parser must handle; `eol` is the line ending used. */
function sampleStream(eol) {
  return [
    ": keep-alive",
    "",
    'data: {"type":"start","status":"initialized","requestId":"r-1"}',
    "",
    "id: 7",
    'data: {"type":"chunk","content":"Strong 💪 "}',
    "",
    ": a comment between events",
    'data: {"type":"chunk",',
    'data: "content":"café été"}',
    "",
    "id: 8",
    "event: message",
    'data:{"type":"complete","fullMessage":"Strong 💪 café été"}',
    "",
    "",
  ].join(eol);
}

const SAMPLE_EVENTS = [
  { type: "start", status: "initialized", requestId: "r-1" },
  { type: "chunk", content: "Strong 💪 " },
  { type: "chunk", content: "café été" },
  { type: "complete", fullMessage: "Strong 💪 café été" },
];

function parseInPieces(pieces, options) {
  const events = [];
  const ids = [];
  const parser = createSseParser((event, meta) => {
    events.push(event);
    ids.push(meta.lastEventId);
  }, options);
  for (const piece of pieces) parser.push(piece);
  parser.end();
  return { events, ids, parser };
}

describe("createSseParser", () => {
  for (const [name, eol] of [
    ["LF", "\n"],
    ["CRLF", "\r\n"],
    ["CR", "\r"],
  ]) {
    test(`${name}: the same events whatever byte the stream is split at`, () => {
      const bytes = encoder.encode(sampleStream(eol));
      for (let i = 0; i <= bytes.length; i++) {
        const { events, ids } = parseInPieces([bytes.slice(0, i), bytes.slice(i)]);
        assert.deepEqual(events, SAMPLE_EVENTS, `split at byte ${i}`);
        assert.deepEqual(ids, ["", "7", "7", "8"], `split at byte ${i}`);
      }
    });

    test(`${name}: one byte per read`, () => {
      const bytes = encoder.encode(sampleStream(eol));
      const pieces = Array.from(bytes, (_, i) => bytes.slice(i, i + 1));
      assert.deepEqual(parseInPieces(pieces).events, SAMPLE_EVENTS);
    });
  }

  test("CRLF: every pair of split points (three reads)", () => {
    const bytes = encoder.encode(sampleStream("\r\n"));
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j += 3) {
        const { events } = parseInPieces([bytes.slice(0, i), bytes.slice(i, j), bytes.slice(j)]);
        assert.deepEqual(events, SAMPLE_EVENTS, `split at ${i} and ${j}`);
      }
    }
  });

  test("splits inside multi-byte characters decode correctly", () => {
    const text = 'data: {"c":"💪é"}\n\n';
    const bytes = encoder.encode(text);
    const emoji = bytes.indexOf(0xf0);
    for (const at of [emoji + 1, emoji + 2, emoji + 3, emoji + 5]) {
      assert.deepEqual(parseInPieces([bytes.slice(0, at), bytes.slice(at)]).events, [{ c: "💪é" }], `at ${at}`);
    }
  });

  test("mixed line endings in one stream, and text pushes", () => {
    // a CR at the end of one read and its LF at the start of the next are one line ending
    const { events } = parseInPieces(['data: {"a":1}\r', '\n\r\ndata: {"c":3}\r\r', "data: 4\n", "\n"]);
    assert.deepEqual(events, [{ a: 1 }, { c: 3 }, 4]);
  });

  test("multiple data lines are joined with a newline", () => {
    const raw = [];
    const parser = createSseParser((data) => raw.push(data), { parse: (data) => data });
    parser.push("data: one\ndata:two\ndata\ndata:  four\n\n");
    assert.deepEqual(raw, ["one\ntwo\n\n four"]);
  });

  test("a trailing event without its blank line is not dispatched", () => {
    const { events, parser } = parseInPieces(['data: {"type":"start"}\n\ndata: {"type":"chunk"}\n']);
    assert.deepEqual(events, [{ type: "start" }]);
    assert.equal(parser.pending, false); // end() discarded it
    const open = createSseParser(() => {});
    open.push('data: {"x":1}');
    assert.equal(open.pending, true);
  });

  test("comments, blank lines without data, unknown fields and a BOM dispatch nothing", () => {
    const bom = new Uint8Array([0xef, 0xbb, 0xbf]);
    const { events } = parseInPieces([bom, ": hi\n\n\nfoo: bar\nretry: x\n\n:data: {}\n\n"]);
    assert.deepEqual(events, []);
    const withBom = parseInPieces([bom, encoder.encode('data: {"ok":true}\n\n')]);
    assert.deepEqual(withBom.events, [{ ok: true }]);
  });

  test("id, event and retry fields", () => {
    const seen = [];
    const parser = createSseParser((data, meta) => seen.push([data, meta]), { parse: (d) => d });
    parser.push("id: 1\nevent: ping\nretry: 2500\ndata: a\n\n");
    parser.push("data: b\n\n"); // the id carries over, the event type does not
    parser.push("id: bad\0id\ndata: c\n\n"); // an id with NUL is ignored
    parser.push("id\n\n"); // an empty id resets it, even without data
    assert.deepEqual(seen, [
      ["a", { event: "ping", lastEventId: "1" }],
      ["b", { event: "message", lastEventId: "1" }],
      ["c", { event: "message", lastEventId: "1" }],
    ]);
    assert.equal(parser.lastEventId, "");
    assert.equal(parser.retry, 2500);
  });
});

// --- a fake fetch whose bodies arrive when the test says so ---------------------------------

function controlledBody() {
  let controller;
  const body = {
    cancelled: null,
    stream: new ReadableStream({
      start(c) {
        controller = c;
      },
      cancel(reason) {
        body.cancelled = reason ?? "cancelled";
      },
    }),
    push: (text) => controller.enqueue(encoder.encode(text)),
    close: () => controller.close(),
    error: (error) => controller.error(error),
  };
  return body;
}

const SSE = { "Content-Type": "text/event-stream; charset=utf-8" };
const JSON_HEADERS = { "Content-Type": "application/json" };

const sse = (...events) => events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("");
const errorResponse = (status, code, message, headers = {}) =>
  new Response(JSON.stringify({ error: { code, message } }), { status, headers: { ...JSON_HEADERS, ...headers } });

/** `fetch` answering each call with the next responder; every call is recorded. */
function fakeFetch(...responders) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, method: init.method ?? "GET", headers: init.headers, body: init.body ? JSON.parse(init.body) : null });
    const responder = responders[calls.length - 1];
    if (!responder) throw new Error(`unexpected fetch #${calls.length}: ${url}`);
    return responder(url, init);
  };
  return { fetch, calls };
}

const START = { type: "start", status: "initialized", requestId: "req-1" };
const COMPLETE = {
  type: "complete",
  status: "finished",
  conversationId: "conv",
  messageId: "ai-1",
  fullMessage: "Nice work.",
  userMessage: { id: "u-1", role: "user", content: "hi", timestamp: "t" },
  aiMessage: { id: "ai-1", role: "assistant", content: "Nice work.", timestamp: "t", metadata: { outputTokens: 3 } },
};

function conversation(fetch, extra = {}) {
  const transports = [];
  const fallbacks = [];
  const iterator = streamCoachConversation({
    streamUrl: "http://stream.test/",
    apiUrl: "http://api.test",
    userId: "u 1",
    coachId: "coach",
    conversationId: "conv",
    token: "tok",
    body: { userResponse: "hi" },
    fetch,
    onTransport: (t) => transports.push(t),
    onFallback: (f) => fallbacks.push(`${f.from}->${f.to}:${f.error.status || f.error.code}`),
    ...extra,
  });
  return { iterator, transports, fallbacks };
}

async function collect(iterator) {
  const events = [];
  for await (const event of iterator) events.push(event);
  return events;
}

const STREAM_PATH = "/users/u%201/coaches/coach/conversations/conv";

describe("streamCoachConversation", { timeout: 10_000 }, () => {
  test("yields each event as it arrives from the Function URL", async () => {
    const body = controlledBody();
    const { fetch, calls } = fakeFetch(() => new Response(body.stream, { headers: SSE }));
    const { iterator, transports } = conversation(fetch);

    const first = iterator.next();
    await new Promise((resolve) => setTimeout(resolve, 5));
    body.push(sse(START).slice(0, 20)); // half an event: nothing yet
    await new Promise((resolve) => setTimeout(resolve, 5));
    body.push(sse(START).slice(20) + ": keep-alive\n\n");
    assert.deepEqual((await first).value, START);
    assert.deepEqual(transports, ["stream"]);

    const second = iterator.next();
    body.push(sse({ type: "contextual", content: "Looking…", updateType: "x" }, { type: "chunk", content: "Nice " }));
    assert.equal((await second).value.type, "contextual");
    assert.deepEqual((await iterator.next()).value, { type: "chunk", content: "Nice " });

    body.push(sse({ type: "chunk", content: "work." }, COMPLETE));
    assert.equal((await iterator.next()).value.content, "work.");
    assert.deepEqual((await iterator.next()).value, COMPLETE);
    assert.equal((await iterator.next()).done, true); // complete ends the turn

    assert.equal(calls.length, 1);
    assert.equal(calls[0].url, `http://stream.test${STREAM_PATH}/stream`);
    assert.equal(calls[0].method, "POST");
    assert.equal(calls[0].headers.Authorization, "Bearer tok");
    assert.equal(calls[0].body.userResponse, "hi");
    assert.match(calls[0].body.clientMessageId, /^[A-Za-z0-9_-]{1,64}$/);
    assert.equal(new Date(calls[0].body.messageTimestamp).toISOString(), calls[0].body.messageTimestamp);
  });

  test("a network error falls back to the buffered SSE of the API", async () => {
    const { fetch, calls } = fakeFetch(
      () => {
        throw new TypeError("fetch failed");
      },
      () => new Response(sse(START, { type: "chunk", content: "Nice work." }, COMPLETE), { headers: SSE }),
    );
    const { iterator, transports, fallbacks } = conversation(fetch);
    const events = await collect(iterator);
    assert.deepEqual(
      events.map((e) => e.type),
      ["start", "chunk", "complete"],
    );
    assert.deepEqual(transports, ["buffered"]);
    assert.deepEqual(fallbacks, ["stream->buffered:NETWORK_ERROR"]);
    assert.equal(calls[1].url, `http://api.test${STREAM_PATH}/send-message?stream=true`);
    assert.equal(calls[1].method, "POST");
    assert.equal(calls[1].body.clientMessageId, calls[0].body.clientMessageId, "the retry is idempotent");
  });

  test("503 before the first event: buffered, then 503 again: plain JSON as events", async () => {
    const json = {
      conversationId: "conv",
      userMessage: COMPLETE.userMessage,
      aiMessage: COMPLETE.aiMessage,
      fullMessage: "Nice work.",
    };
    const { fetch, calls } = fakeFetch(
      () => errorResponse(503, "STREAMING_DISABLED", "streaming is off"),
      () => errorResponse(503, "INTERNAL_ERROR", "busy"),
      () => new Response(JSON.stringify(json), { headers: { ...JSON_HEADERS, "x-amzn-requestid": "req-9" } }),
    );
    const { iterator, transports, fallbacks } = conversation(fetch);
    const events = await collect(iterator);
    assert.deepEqual(events, [
      { type: "start", status: "initialized", requestId: "req-9" },
      { type: "chunk", content: "Nice work." },
      COMPLETE,
    ]);
    assert.deepEqual(transports, ["json"]);
    assert.deepEqual(fallbacks, ["stream->buffered:503", "buffered->json:503"]);
    assert.equal(calls[2].url, `http://api.test${STREAM_PATH}/send-message`);
  });

  test("when every transport fails, the last error is thrown", async () => {
    const { fetch } = fakeFetch(
      () => errorResponse(500, "INTERNAL_ERROR", "a"),
      () => errorResponse(502, "INTERNAL_ERROR", "b"),
      () => errorResponse(503, "MODEL_UNAVAILABLE", "the coach is unavailable; please try again"),
    );
    await assert.rejects(collect(conversation(fetch).iterator), {
      name: "CoachStreamError",
      status: 503,
      code: "MODEL_UNAVAILABLE",
      transport: "json",
    });
  });

  test("401 throws a CoachStreamError and is not retried", async () => {
    const { fetch, calls } = fakeFetch(() => errorResponse(401, "UNAUTHORIZED", "token expired"));
    const error = await collect(conversation(fetch).iterator).catch((e) => e);
    assert.ok(error instanceof CoachStreamError);
    assert.equal(error.status, 401);
    assert.equal(error.code, "UNAUTHORIZED");
    assert.equal(error.message, "token expired");
    assert.equal(calls.length, 1);
  });

  test("a 4xx from a fallback is not retried either; 429 carries Retry-After", async () => {
    const { fetch, calls } = fakeFetch(
      () => errorResponse(500, "INTERNAL_ERROR", "boom"),
      () => errorResponse(429, "RATE_LIMITED", "slow down", { "Retry-After": "12" }),
    );
    await assert.rejects(collect(conversation(fetch).iterator), { status: 429, code: "RATE_LIMITED", retryAfter: 12 });
    assert.equal(calls.length, 2);
  });

  test("useStreaming false skips the Function URL", async () => {
    const { fetch, calls } = fakeFetch(() => new Response(sse(START, COMPLETE), { headers: SSE }));
    const { iterator, transports } = conversation(fetch, { useStreaming: false });
    assert.equal((await collect(iterator)).length, 2);
    assert.deepEqual(transports, ["buffered"]);
    assert.equal(calls[0].url, `http://api.test${STREAM_PATH}/send-message?stream=true`);
  });

  test("a body that ends before any event falls back", async () => {
    const { fetch } = fakeFetch(
      () => new Response(": keep-alive\n\n", { headers: SSE }),
      () => new Response(sse(START, COMPLETE), { headers: SSE }),
    );
    const { iterator, transports } = conversation(fetch);
    assert.equal((await collect(iterator)).length, 2);
    assert.deepEqual(transports, ["buffered"]);
  });

  test("the stream's own error event ends the turn without a retry", async () => {
    const failure = { type: "error", code: "MODEL_UNAVAILABLE", message: "the coach is unavailable; please try again" };
    const { fetch, calls } = fakeFetch(() => new Response(sse(START, failure), { headers: SSE }));
    assert.deepEqual(await collect(conversation(fetch).iterator), [START, failure]);
    assert.equal(calls.length, 1);
  });

  test("with recovery off, a connection that breaks after the first event throws, without a retry", async () => {
    const body = controlledBody();
    const { fetch, calls } = fakeFetch(() => new Response(body.stream, { headers: SSE }));
    const { iterator } = conversation(fetch, { recovery: false });
    body.push(sse(START, { type: "chunk", content: "Nice " }));
    assert.equal((await iterator.next()).value.type, "start");
    assert.equal((await iterator.next()).value.type, "chunk");
    const next = iterator.next();
    body.error(new TypeError("terminated"));
    await assert.rejects(next, { name: "CoachStreamError", code: "STREAM_INTERRUPTED", transport: "stream" });
    assert.equal(calls.length, 1);
  });

  test("without an apiUrl to recover from, a stream that simply stops after the first event is STREAM_INCOMPLETE", async () => {
    const { fetch, calls } = fakeFetch(() => new Response(sse(START), { headers: SSE }));
    await assert.rejects(collect(conversation(fetch, { apiUrl: undefined }).iterator), { code: "STREAM_INCOMPLETE" });
    assert.equal(calls.length, 1);
  });

  test("abort mid-stream: the body is cancelled and the iterator throws an AbortError", async () => {
    const body = controlledBody(); // this fake fetch ignores the signal: the client must cancel itself
    const { fetch, calls } = fakeFetch(() => new Response(body.stream, { headers: SSE }));
    const controller = new AbortController();
    const { iterator } = conversation(fetch, { signal: controller.signal });
    body.push(sse(START));
    assert.equal((await iterator.next()).value.type, "start");
    const pending = iterator.next();
    setTimeout(() => controller.abort(), 5);
    await assert.rejects(pending, { name: "AbortError" });
    assert.ok(body.cancelled, "the body was cancelled");
    assert.equal(calls.length, 1, "an abort never falls back");
    assert.equal((await iterator.next()).done, true);
  });

  test("abort before the answer: no fallback, an AbortError", async () => {
    const controller = new AbortController();
    const { fetch, calls } = fakeFetch(
      (_url, init) =>
        new Promise((_resolve, reject) => init.signal.addEventListener("abort", () => reject(init.signal.reason))),
    );
    const pending = collect(conversation(fetch, { signal: controller.signal }).iterator);
    setTimeout(() => controller.abort(), 5);
    await assert.rejects(pending, { name: "AbortError" });
    assert.equal(calls.length, 1);
  });

  test("leaving the loop early cancels the body", async () => {
    const body = controlledBody();
    const { fetch } = fakeFetch(() => new Response(body.stream, { headers: SSE }));
    body.push(sse(START, { type: "chunk", content: "a" }));
    for await (const event of conversation(fetch).iterator) {
      if (event.type === "chunk") break;
    }
    assert.ok(body.cancelled);
  });

  test("with the real fetch, an abort closes the connection on the server", async () => {
    let serverSawClose;
    const closed = new Promise((resolve) => {
      serverSawClose = resolve;
    });
    const server = http.createServer((req, res) => {
      res.writeHead(200, SSE);
      res.write(sse(START));
      res.on("close", serverSawClose);
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const controller = new AbortController();
      const iterator = streamCoachConversation({
        streamUrl: `http://127.0.0.1:${server.address().port}`,
        userId: "u",
        coachId: "c",
        conversationId: "x",
        token: "t",
        body: { userResponse: "hi" },
        signal: controller.signal,
      });
      assert.equal((await iterator.next()).value.type, "start");
      const pending = iterator.next();
      controller.abort();
      await assert.rejects(pending, { name: "AbortError" });
      await closed;
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe("streamCoachCreatorSession", { timeout: 10_000 }, () => {
  test("streams from the creator Function URL", async () => {
    const complete = { type: "complete", status: "finished", sessionId: "s1", aiResponse: "Next?", isComplete: false };
    const { fetch, calls } = fakeFetch(() => new Response(sse(START, { type: "chunk", content: "Next?" }, complete), { headers: SSE }));
    const events = await collect(
      streamCoachCreatorSession({ streamUrl: "http://c.test", userId: "u", sessionId: "s1", token: "t", body: { userResponse: "5 years" }, fetch }),
    );
    assert.deepEqual(events.at(-1), complete);
    assert.equal(calls[0].url, "http://c.test/users/u/coach-creator-sessions/s1/stream");
    assert.deepEqual(Object.keys(calls[0].body), ["userResponse", "clientMessageId"]);
    assert.equal(calls[0].body.userResponse, "5 years");
    assert.match(calls[0].body.clientMessageId, /^[A-Za-z0-9_-]{1,64}$/);
  });

  test("falls back to PUT ?stream=true and then to the JSON answer", async () => {
    const json = {
      sessionId: "s1",
      aiResponse: "How many days a week?",
      isComplete: false,
      nextQuestion: "How many days a week?",
      progressDetails: { questionsCompleted: 3, totalQuestions: 12, percentage: 25, sophisticationLevel: "INTERMEDIATE" },
      coachConfigGenerating: false,
    };
    const { fetch, calls } = fakeFetch(
      () => {
        throw new TypeError("fetch failed");
      },
      () => errorResponse(500, "INTERNAL_ERROR", "x"),
      () => new Response(JSON.stringify(json), { headers: JSON_HEADERS }),
    );
    const transports = [];
    const events = await collect(
      streamCoachCreatorSession({
        streamUrl: "http://c.test",
        apiUrl: "http://api.test",
        userId: "u",
        sessionId: "s1",
        token: "t",
        body: { userResponse: "5 years" },
        fetch,
        onTransport: (t) => transports.push(t),
      }),
    );
    assert.deepEqual(events, [
      { type: "start", status: "initialized", requestId: null },
      { type: "chunk", content: json.aiResponse },
      { type: "complete", status: "finished", ...json },
    ]);
    assert.deepEqual(
      calls.map((c) => `${c.method} ${c.url}`),
      [
        "POST http://c.test/users/u/coach-creator-sessions/s1/stream",
        "PUT http://api.test/users/u/coach-creator-sessions/s1?stream=true",
        "PUT http://api.test/users/u/coach-creator-sessions/s1",
      ],
    );
    assert.deepEqual(transports, ["json"]);
  });
});

// --- recovery: a stream that broke after it started ends with the stored reply ----------------

/** A body that sends `events`, then breaks like a dropped connection (a read rejects). */
function droppingBody(...events) {
  let reads = 0;
  return new ReadableStream({
    pull(controller) {
      if (reads++ === 0) controller.enqueue(encoder.encode(sse(...events)));
      else controller.error(new TypeError("terminated"));
    },
  });
}

const json = (value, status = 200) => new Response(JSON.stringify(value), { status, headers: JSON_HEADERS });

/**
 * `fetch` for a turn whose stream answers with `post` and whose stored state each GET reads:
 * `reads[n]` answers the n-th read (the last one answers every read after it), called with the
 * body the turn POSTed. Every call is recorded with the time it was made.
 */
function turnFetch(post, ...reads) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    const method = init.method ?? "GET";
    calls.push({ url, method, headers: init.headers, body: init.body ? JSON.parse(init.body) : null, at: performance.now() });
    if (method !== "GET") return post();
    const gets = calls.filter((call) => call.method === "GET").length;
    const sent = calls.find((call) => call.method !== "GET").body;
    return reads[Math.min(gets, reads.length) - 1](sent);
  };
  return {
    fetch,
    calls,
    posts: () => calls.filter((call) => call.method !== "GET"),
    reads: () => calls.filter((call) => call.method === "GET"),
  };
}

/** How the API writes a timestamp the client sent (Python's isoformat): same instant, other text. */
const asStored = (timestamp) => timestamp.replace(/\.(\d{3})Z$/, ".$1000+00:00");

const REPLY_TEXT = "Nice work. Add 2.5 kg next session.";

/** The conversation as GET shows it: an earlier turn with the same words, then this one's. */
function storedConversation(sent, reply) {
  const earlier = { id: "u-0", role: "user", content: sent.userResponse, timestamp: "2024-01-01T08:00:00+00:00" };
  const earlierReply = { id: "a-0", role: "assistant", content: "Earlier reply.", timestamp: "2024-01-01T08:00:05+00:00" };
  const user = { id: "u-1", role: "user", content: sent.userResponse, timestamp: asStored(sent.messageTimestamp) };
  return json({
    conversation: { conversationId: "conv", messageCount: reply ? 4 : 3 },
    messages: [earlier, earlierReply, user, ...(reply ? [reply] : [])],
  });
}

const storedReply = (status, content = REPLY_TEXT) => ({
  id: "a-1",
  role: "assistant",
  content,
  timestamp: "2024-01-01T09:00:09+00:00",
  metadata: { model: "m", outputTokens: 9, status },
});

const QUESTION = { id: "q-3", text: "How many days a week can you train?" };
const PROGRESS = { questionsCompleted: 3, totalQuestions: 12, percentage: 25, sophisticationLevel: "INTERMEDIATE" };

/** The session as GET shows it; `entry` is this answer's history entry once it is recorded. */
function storedSession(sent, entry) {
  const answer = sent.userResponse; // the same words as this answer's, to an earlier question
  const before = { questionId: "q-1", answer, aiResponse: "Got it.", status: "complete", clientMessageId: "earlier" };
  const recorded = entry ? [{ questionId: "q-2", answer, answeredAt: new Date().toISOString(), ...entry }] : [];
  return json({
    sessionId: "s1",
    history: [before, ...recorded],
    currentQuestion: QUESTION,
    progressDetails: PROGRESS,
    isComplete: false,
    coachConfigStatus: "none",
  });
}

/** The two flows, each: how to run it, its stored state without and with the reply, and what it recovers to. */
const FLOWS = [
  {
    name: "conversation",
    readUrl: `http://api.test${STREAM_PATH}`,
    run: (fetch, extra) => conversation(fetch, extra).iterator,
    pending: (sent) => storedConversation(sent, null),
    done: (status) => (sent) => storedConversation(sent, storedReply(status)),
    expected: (status, sent) => ({
      type: "complete",
      status: "finished",
      conversationId: "conv",
      messageId: "a-1",
      fullMessage: REPLY_TEXT,
      userMessage: { id: "u-1", role: "user", content: "hi", timestamp: asStored(sent.messageTimestamp) },
      aiMessage: storedReply(status),
      recovered: true,
      replyStatus: status,
    }),
  },
  {
    name: "creator",
    readUrl: "http://api.test/users/u/coach-creator-sessions/s1",
    run: (fetch, extra) =>
      streamCoachCreatorSession({
        streamUrl: "http://c.test",
        apiUrl: "http://api.test",
        userId: "u",
        sessionId: "s1",
        token: "tok",
        body: { userResponse: "hi" },
        fetch,
        ...extra,
      }),
    pending: (sent) => storedSession(sent, null),
    done: (status) => (sent) => storedSession(sent, { aiResponse: REPLY_TEXT, status, clientMessageId: sent.clientMessageId }),
    expected: (status) => ({
      type: "complete",
      status: "finished",
      sessionId: "s1",
      aiResponse: REPLY_TEXT,
      isComplete: false,
      nextQuestion: QUESTION.text,
      progressDetails: PROGRESS,
      coachConfigGenerating: false,
      recovered: true,
      replyStatus: status,
    }),
  },
];

const FAST = { timeoutMs: 2_000, firstDelayMs: 1, maxDelayMs: 5 };
const dropAfterChunk = () => new Response(droppingBody(START, { type: "chunk", content: "Nice " }), { headers: SSE });

describe("recovery of a stream that broke after it started", { timeout: 10_000 }, () => {
  for (const flow of FLOWS) {
    test(`${flow.name}: a network drop after start, the stored reply on the first read`, async () => {
      const { fetch, calls, posts, reads } = turnFetch(dropAfterChunk, flow.done("complete"));
      const recovering = [];
      const events = await collect(flow.run(fetch, { recovery: FAST, onRecovering: (info) => recovering.push(info) }));
      const sent = posts()[0].body;
      assert.deepEqual(events, [START, { type: "chunk", content: "Nice " }, flow.expected("complete", sent)]);
      assert.equal(posts().length, 1, "the message is never sent twice");
      assert.deepEqual(
        reads().map((call) => call.url),
        [flow.readUrl],
      );
      assert.equal(calls[1].headers.Authorization, "Bearer tok");
      assert.equal(recovering.length, 1);
      assert.equal(recovering[0].error.code, "STREAM_INTERRUPTED");
      assert.equal(recovering[0].clientMessageId, sent.clientMessageId);
    });

    test(`${flow.name}: the reply stored only by the third read is recovered after backoff`, async () => {
      const { fetch, posts, reads } = turnFetch(
        dropAfterChunk,
        flow.pending,
        () => errorResponse(503, "INTERNAL_ERROR", "busy"), // a failed read is tried again
        flow.done("complete"),
      );
      const recovery = { timeoutMs: 5_000, firstDelayMs: 20, maxDelayMs: 1_000 };
      const events = await collect(flow.run(fetch, { recovery }));
      assert.deepEqual(events.at(-1), flow.expected("complete", posts()[0].body));
      assert.equal(posts().length, 1, "the message is never sent twice");
      const times = reads().map((call) => call.at);
      assert.equal(times.length, 3);
      assert.ok(times[1] - times[0] >= 18, `first wait ${times[1] - times[0]} ms`);
      assert.ok(times[2] - times[1] >= 38, `second wait ${times[2] - times[1]} ms: the delay doubles`);
    });

    test(`${flow.name}: a reply that never appears rejects clearly once the bound is up`, async () => {
      const { fetch, posts, reads } = turnFetch(dropAfterChunk, flow.pending);
      const began = performance.now();
      const error = await collect(flow.run(fetch, { recovery: { timeoutMs: 60, firstDelayMs: 5, maxDelayMs: 10 } })).catch(
        (e) => e,
      );
      const took = performance.now() - began;
      assert.ok(error instanceof CoachStreamError, String(error));
      assert.equal(error.code, "REPLY_NOT_RECOVERED");
      assert.equal(error.transport, "recovery");
      assert.equal(error.cause.code, "STREAM_INTERRUPTED");
      assert.match(error.message, /no stored reply appeared within 0\.1 s/);
      assert.ok(took >= 55 && took < 2_000, `gave up after ${took} ms`);
      assert.ok(reads().length >= 3, `read ${reads().length} times`);
      assert.equal(posts().length, 1, "the message is never sent twice");
    });

    test(`${flow.name}: a body that just stops, with an interrupted reply stored, recovers with its status`, async () => {
      const stops = () => new Response(sse(START, { type: "chunk", content: "Nice " }), { headers: SSE });
      const { fetch, posts } = turnFetch(stops, flow.done("interrupted"));
      const recovering = [];
      const events = await collect(flow.run(fetch, { recovery: FAST, onRecovering: (info) => recovering.push(info) }));
      assert.deepEqual(events.at(-1), flow.expected("interrupted", posts()[0].body));
      assert.equal(recovering[0].error.code, "STREAM_INCOMPLETE");
      assert.equal(posts().length, 1, "the message is never sent twice");
    });

    test(`${flow.name}: an abort stops the recovery`, async () => {
      const { fetch, posts, reads } = turnFetch(dropAfterChunk, flow.pending);
      const controller = new AbortController();
      const pending = collect(flow.run(fetch, { signal: controller.signal, recovery: { firstDelayMs: 1_000 } }));
      setTimeout(() => controller.abort(), 30);
      await assert.rejects(pending, { name: "AbortError" });
      assert.equal(reads().length, 1);
      assert.equal(posts().length, 1);
    });

    test(`${flow.name}: a refused read (401) ends the recovery with that error`, async () => {
      const { fetch, posts, reads } = turnFetch(dropAfterChunk, () => errorResponse(401, "UNAUTHORIZED", "token expired"));
      await assert.rejects(collect(flow.run(fetch, { recovery: FAST })), {
        name: "CoachStreamError",
        status: 401,
        code: "UNAUTHORIZED",
        transport: "recovery",
      });
      assert.equal(reads().length, 1);
      assert.equal(posts().length, 1);
    });
  }

  test("conversation: the caller's clientMessageId and messageTimestamp are kept and matched; a superseded reply is skipped", async () => {
    const messageTimestamp = "2024-01-01T09:00:00+02:00";
    const partial = { ...storedReply("interrupted", "Nice"), id: "a-old", metadata: { status: "interrupted", superseded: true } };
    const read = () =>
      json({
        conversation: { conversationId: "conv" },
        messages: [
          { id: "u-1", role: "user", content: "hi", timestamp: "2024-01-01T07:00:00+00:00" }, // the same instant
          partial,
          storedReply("complete"),
          { id: "u-2", role: "user", content: "hi", timestamp: "2024-01-01T07:05:00+00:00" }, // another tab's
          { ...storedReply("complete", "Another reply."), id: "a-2" },
        ],
      });
    const { fetch, posts } = turnFetch(dropAfterChunk, read);
    const body = { userResponse: "hi", clientMessageId: "mine-1", messageTimestamp };
    const events = await collect(conversation(fetch, { body, recovery: FAST }).iterator);
    assert.deepEqual(posts()[0].body, body);
    assert.equal(events.at(-1).messageId, "a-1");
    assert.equal(events.at(-1).fullMessage, REPLY_TEXT);
  });

  test("conversation: a user message that shows its clientMessageId is matched by it", async () => {
    const read = (sent) =>
      json({
        conversation: { conversationId: "conv" },
        messages: [
          { id: "u-1", role: "user", content: "hi", timestamp: asStored(sent.messageTimestamp), clientMessageId: sent.clientMessageId },
          storedReply("complete"),
          { id: "u-2", role: "user", content: "hi", timestamp: asStored(sent.messageTimestamp), clientMessageId: "other" },
        ],
      });
    const { fetch } = turnFetch(dropAfterChunk, read);
    const events = await collect(conversation(fetch, { recovery: FAST }).iterator);
    assert.equal(events.at(-1).userMessage.id, "u-1");
    assert.equal(events.at(-1).messageId, "a-1");
  });

  test("creator: a server that shows no clientMessageId in history is matched by a recent answer's text", async () => {
    const read = (recorded) => (sent) =>
      json({
        sessionId: "s1",
        history: [
          // the same words, answered long before: not this answer
          { questionId: "q-1", answer: sent.userResponse, aiResponse: "Got it.", answeredAt: "2024-01-01T08:00:00+00:00" },
          ...(recorded ? [{ questionId: "q-2", answer: sent.userResponse, aiResponse: REPLY_TEXT, answeredAt: new Date().toISOString() }] : []),
        ],
        currentQuestion: null,
        progressDetails: { ...PROGRESS, percentage: 100 },
        isComplete: Boolean(recorded),
        coachConfigStatus: recorded ? "generating" : "none",
      });
    const { fetch, reads } = turnFetch(dropAfterChunk, read(false), read(true));
    const events = await collect(FLOWS[1].run(fetch, { recovery: FAST }));
    assert.equal(reads().length, 2);
    assert.deepEqual(events.at(-1), {
      ...FLOWS[1].expected("complete"),
      nextQuestion: null,
      isComplete: true,
      coachConfigGenerating: true,
      progressDetails: { ...PROGRESS, percentage: 100 },
    });
  });
});

describe("fetchConfig", () => {
  test("GET /config with the token", async () => {
    const config = { features: { streamingEnabled: true, streamingPercentage: 100 }, endpoints: {}, useStreaming: true };
    const { fetch, calls } = fakeFetch(() => new Response(JSON.stringify(config), { headers: JSON_HEADERS }));
    assert.deepEqual(await fetchConfig({ apiUrl: "http://api.test/", token: "t", fetch }), config);
    assert.equal(calls[0].url, "http://api.test/config");
    assert.equal(calls[0].headers.Authorization, "Bearer t");
  });

  test("an error answer throws a CoachStreamError", async () => {
    const { fetch } = fakeFetch(() => errorResponse(500, "INTERNAL_ERROR", "no"));
    await assert.rejects(fetchConfig({ apiUrl: "http://api.test", fetch }), { status: 500, code: "INTERNAL_ERROR" });
  });
});

// --- who answered an error: our functions, API Gateway, Lambda ---------------------------------

/** The error answers a client can meet, byte for byte as each side writes them. */
const ERROR_SHAPES = [
  {
    name: "our function's 401 (the contract's shape)",
    response: () => errorResponse(401, "UNAUTHORIZED", "token expired"),
    expected: { status: 401, code: "UNAUTHORIZED", message: "token expired", retryAfter: null },
  },
  {
    name: "our function's 429 with Retry-After",
    response: () => errorResponse(429, "RATE_LIMITED", "too many requests; try again shortly", { "Retry-After": "17" }),
    expected: { status: 429, code: "RATE_LIMITED", message: "too many requests; try again shortly", retryAfter: 17 },
  },
  {
    name: "the HTTP API JWT authorizer's 401, with www-authenticate",
    response: () =>
      new Response('{"message":"Unauthorized"}', {
        status: 401,
        headers: {
          ...JSON_HEADERS,
          "www-authenticate": 'Bearer scope="" error="invalid_token" error_description="the token has expired"',
        },
      }),
    expected: { status: 401, code: "UNAUTHORIZED", message: "the token has expired", retryAfter: null },
  },
  {
    name: "the HTTP API JWT authorizer's 401, its header not exposed to the page (CORS)",
    response: () => new Response('{"message":"Unauthorized"}', { status: 401, headers: JSON_HEADERS }),
    expected: { status: 401, code: "UNAUTHORIZED", message: "Unauthorized", retryAfter: null },
  },
  {
    name: "the HTTP API stage throttle's 429",
    response: () => new Response('{"message":"Too Many Requests"}', { status: 429, headers: JSON_HEADERS }),
    expected: { status: 429, code: "RATE_LIMITED", message: "Too Many Requests", retryAfter: null },
  },
  {
    name: "a throttled Function URL's 429",
    response: () => new Response('{"Message":"Rate Exceeded."}', { status: 429, headers: JSON_HEADERS }),
    expected: { status: 429, code: "RATE_LIMITED", message: "Rate Exceeded.", retryAfter: null },
  },
  {
    name: "a 429 whose body is not JSON, Retry-After as a date",
    response: () =>
      new Response("slow down", {
        status: 429,
        statusText: "Too Many Requests",
        headers: { "Retry-After": new Date(Date.now() + 30_000).toUTCString() },
      }),
    expected: { status: 429, code: "RATE_LIMITED", message: "Too Many Requests" },
  },
];

describe("error answers, whoever wrote them", { timeout: 10_000 }, () => {
  for (const shape of ERROR_SHAPES) {
    test(`${shape.name}: the stream throws it typed, with no fallback`, async () => {
      const { fetch, calls } = fakeFetch(shape.response);
      const error = await collect(conversation(fetch).iterator).catch((e) => e);
      assert.ok(error instanceof CoachStreamError, String(error));
      assert.deepEqual(
        { status: error.status, code: error.code, message: error.message, transport: error.transport },
        { status: shape.expected.status, code: shape.expected.code, message: shape.expected.message, transport: "stream" },
      );
      if ("retryAfter" in shape.expected) assert.equal(error.retryAfter, shape.expected.retryAfter);
      assert.equal(calls.length, 1);
    });

    test(`${shape.name}: the same from a fallback and from a read`, async () => {
      const fromFallback = fakeFetch(() => errorResponse(503, "INTERNAL_ERROR", "busy"), shape.response);
      const fallbackError = await collect(conversation(fromFallback.fetch).iterator).catch((e) => e);
      const read = fakeFetch(shape.response);
      const readError = await fetchConfig({ apiUrl: "http://api.test", fetch: read.fetch }).catch((e) => e);
      for (const error of [fallbackError, readError]) {
        assert.ok(error instanceof CoachStreamError, String(error));
        assert.equal(error.status, shape.expected.status);
        assert.equal(error.code, shape.expected.code);
        assert.equal(error.message, shape.expected.message);
      }
      assert.equal(fallbackError.transport, "buffered");
    });
  }

  test("Retry-After as a date is the seconds until it, never negative", async () => {
    const soon = await errorFromResponse(
      new Response("", { status: 429, headers: { "Retry-After": new Date(Date.now() + 30_000).toUTCString() } }),
    );
    assert.ok(soon.retryAfter >= 29 && soon.retryAfter <= 31, String(soon.retryAfter));
    const past = await errorFromResponse(
      new Response("", { status: 429, headers: { "Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT" } }),
    );
    assert.equal(past.retryAfter, 0);
    const nonsense = await errorFromResponse(new Response("", { status: 429, headers: { "Retry-After": "soon" } }));
    assert.equal(nonsense.retryAfter, null);
  });

  test("a status no code is known for keeps HTTP_<status>", async () => {
    const error = await errorFromResponse(new Response('{"message":"Conflict"}', { status: 409, headers: JSON_HEADERS }));
    assert.deepEqual([error.code, error.message], ["HTTP_409", "Conflict"]);
  });
});
