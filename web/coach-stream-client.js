// coach-stream-client.js: stream a coach's reply as the contract's events (CONTRACT.md).
//
// An ES module with no dependencies and no build step: it runs in browsers and in Node 20 as is.
// EventSource cannot POST a body or send an Authorization header, so this reads `fetch`'s body
// stream and parses Server-Sent Events itself.
//
// The fallback chain, for each turn:
//   1. the Function URL stream          POST {streamUrl}/users/.../stream       (skipped if !useStreaming)
//   2. the API's buffered SSE           {apiUrl}/...?stream=true                 (same parser)
//   3. the API's plain JSON             {apiUrl}/...                             (turned into events)
// A network error, a 5xx, or a body that ends before its first event moves on to the next step.
// A 4xx never does: it throws a CoachStreamError with the status and a code, the same whether our
// function answered (the contract's `{"error": {...}}`) or API Gateway or Lambda did before it ran
// (a JWT authorizer's 401, a throttle's 429: see `errorFromResponse`). Once an event has been
// yielded the message is never sent again: a failed turn ends with the stream's own `error` event,
// and a connection that breaks (STREAM_INTERRUPTED) or a body that stops (STREAM_INCOMPLETE) is
// recovered from the store.
// `onTransport(transport)` says which step answered, just before the first event is yielded.
//
// Recovery: the server runs the turn on after the client is gone and stores the reply when the
// turn ends. The client reads it back through the API (the conversation's or session's GET), with
// backoff, for at most `recovery.timeoutMs` (default 150 s, a turn's budget), and yields it as one
// `complete` event flagged `recovered: true` (with `replyStatus`: "complete", "interrupted" or
// "timeout"); its `fullMessage`/`aiResponse` is the whole reply and replaces the text of the chunks
// seen so far. A reply that never appears throws a CoachStreamError REPLY_NOT_RECOVERED.
// Every turn carries a `clientMessageId` (generated unless the caller gives one); a conversation
// turn also its `messageTimestamp`, by which the stored user message is found (the API's messages
// do not show `clientMessageId`). `recovery: false`, or no `apiUrl`, throws the stream's error
// instead, as before.
//
// Cancelling: abort the `signal`. The body is cancelled (the connection is released) and the
// iterator THROWS `signal.reason`, a DOMException named "AbortError" unless you aborted with your
// own reason; an abort also stops a recovery. Leaving a `for await` loop early (break/return) also
// cancels the body, silently.

/** @typedef {{type: "start"|"contextual"|"chunk"|"progress"|"complete"|"error", [field: string]: any}} CoachEvent */
/** @typedef {"stream"|"buffered"|"json"} Transport */
/**
 * How long and how often a broken turn's stored reply is looked for; `false` turns recovery off.
 * @typedef {false|{timeoutMs?: number, firstDelayMs?: number, maxDelayMs?: number}} RecoveryOptions
 */

const TERMINAL_TYPES = new Set(["complete", "error"]);
const FALLS_BACK = Symbol("falls back"); // marks a failure before the first event that may try the next transport
const BROKE_AFTER_START = new Set(["STREAM_INTERRUPTED", "STREAM_INCOMPLETE"]);
const RECOVERY_DEFAULTS = { timeoutMs: 150_000, firstDelayMs: 500, maxDelayMs: 5_000 };

/**
 * A failed request: an HTTP error answered before the stream (status and the contract's code, also
 * for API Gateway's and Lambda's own answers: 401 UNAUTHORIZED, 429 RATE_LIMITED, ...), a
 * network failure (`status` 0, code "NETWORK_ERROR"), a stream that broke or ended too early
 * after its first event (code "STREAM_INTERRUPTED" or "STREAM_INCOMPLETE", thrown only when it
 * cannot be recovered), or a recovery that found no stored reply in time ("REPLY_NOT_RECOVERED",
 * its `cause` the stream's error). Errors of the recovery's own reads have `transport` "recovery".
 */
export class CoachStreamError extends Error {
  /**
   * @param {{status?: number, code: string, message: string, retryAfter?: number|null, transport?: Transport|"recovery"|null, cause?: unknown}} details
   */
  constructor({ status = 0, code, message, retryAfter = null, transport = null, cause }) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "CoachStreamError";
    /** HTTP status; 0 when there was no HTTP answer. */
    this.status = status;
    /** The contract's error code, e.g. "UNAUTHORIZED", "RATE_LIMITED", "NETWORK_ERROR". */
    this.code = code;
    /** Seconds from a Retry-After header (our 429s send one; API Gateway's and Lambda's throttles do not), else null. */
    this.retryAfter = retryAfter;
    /** Which transport failed. */
    this.transport = transport;
  }
}

/**
 * An incremental Server-Sent Events parser (the WHATWG "event stream interpretation").
 *
 * Feed it bytes (Uint8Array) or text in any pieces with `push`, then call `end()`. It splits
 * lines on CRLF, LF or CR (also when a CRLF is split across two pushes), decodes UTF-8 as a stream
 * (a character split across pushes is fine; a leading BOM is dropped), ignores comment lines
 * (`: keep-alive`), joins several `data:` lines with "\n", remembers `id:` (without NUL) as
 * `lastEventId` and `retry:` (digits only) as `retry`, and dispatches an event at each blank line.
 * Data that has not been closed by a blank line when `end()` is called is discarded, as the spec says.
 *
 * @param {(data: any, meta: {event: string, lastEventId: string}) => void} onEvent called per event
 *   with its data passed through `parse` (JSON.parse by default: the contract's events are JSON)
 * @param {{parse?: (data: string) => any}} [options]
 * @returns {{push(chunk: Uint8Array|ArrayBuffer|string): void, end(): void,
 *   readonly lastEventId: string, readonly retry: number|null, readonly pending: boolean}}
 */
export function createSseParser(onEvent, { parse = JSON.parse } = {}) {
  const decoder = new TextDecoder("utf-8");
  let line = ""; // the current, not yet terminated line
  let skipLeadingLf = false; // the previous push ended with CR: a LF right after it belongs to it
  let data = "";
  let hasData = false;
  let eventType = "";
  let lastEventIdBuffer = "";
  let lastEventId = "";
  let retry = null;
  let ended = false;

  function dispatch() {
    lastEventId = lastEventIdBuffer;
    if (!hasData) {
      eventType = "";
      return;
    }
    const payload = data;
    const type = eventType || "message";
    data = "";
    hasData = false;
    eventType = "";
    onEvent(parse(payload), { event: type, lastEventId });
  }

  function processLine(text) {
    if (text === "") return dispatch();
    if (text.charCodeAt(0) === 0x3a /* ":" */) return; // a comment
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20 /* " " */) value = value.slice(1);
    switch (field) {
      case "data":
        data = hasData ? `${data}\n${value}` : value;
        hasData = true;
        break;
      case "event":
        eventType = value;
        break;
      case "id":
        if (!value.includes("\0")) lastEventIdBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) retry = Number(value);
        break;
      default: // unknown fields are ignored
    }
  }

  function feed(text) {
    let start = 0;
    if (skipLeadingLf && text.length > 0) {
      if (text.charCodeAt(0) === 0x0a) start = 1;
      skipLeadingLf = false;
    }
    for (let i = start; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code !== 0x0a && code !== 0x0d) continue;
      const complete = line + text.slice(start, i);
      line = "";
      if (code === 0x0d) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 0x0a) i++;
        } else {
          skipLeadingLf = true;
        }
      }
      start = i + 1;
      processLine(complete);
    }
    line += text.slice(start);
  }

  return {
    push(chunk) {
      if (ended) throw new Error("push() after end()");
      feed(typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true }));
    },
    end() {
      if (ended) return;
      ended = true;
      feed(decoder.decode()); // flushes a dangling partial character as U+FFFD
      line = "";
      data = "";
      hasData = false;
      eventType = "";
    },
    get lastEventId() {
      return lastEventId;
    },
    get retry() {
      return retry;
    },
    /** True while an event has started but not been dispatched. */
    get pending() {
      return hasData || line !== "";
    },
  };
}

/**
 * `GET {apiUrl}/config`. With a token the answer has `useStreaming` for that user; pass it on to
 * the stream functions. Without one use `features.streamingEnabled`.
 *
 * @param {{apiUrl: string, token?: string, fetch?: typeof globalThis.fetch, signal?: AbortSignal}} options
 * @returns {Promise<{features: {streamingEnabled: boolean, streamingPercentage: number},
 *   endpoints: Record<string, string|null>, useStreaming?: boolean}>}
 */
export async function fetchConfig({ apiUrl, token, fetch = globalThis.fetch, signal }) {
  return getJson(`${trimSlash(apiUrl)}/config`, { token, fetch, signal, transport: null });
}

/**
 * Streams one conversation turn: yields `start`, `contextual`…, `chunk`…, then `complete` or `error`.
 *
 * A `clientMessageId` is added to `body` when it has none, so a fallback retry after a network
 * error replays the stored turn instead of answering twice; so is a `messageTimestamp`, by which a
 * recovery finds the turn in the conversation. A stream that breaks after its first event ends
 * with the stored reply, read back from the conversation (see "Recovery" above).
 *
 * @param {object} options
 * @param {string} [options.streamUrl] the Function URL (outputs' coachConversationStreamUrl)
 * @param {string} [options.apiUrl] the HTTP API (outputs' apiUrl), for the fallbacks
 * @param {string} options.userId
 * @param {string} options.coachId
 * @param {string} options.conversationId
 * @param {string} options.token a Cognito ID token
 * @param {{userResponse: string, messageTimestamp?: string, clientMessageId?: string, imageS3Keys?: string[]}} options.body
 * @param {AbortSignal} [options.signal] abort to stop: the iterator then throws an AbortError
 * @param {boolean} [options.useStreaming] `/config`'s useStreaming; false skips the Function URL
 * @param {typeof globalThis.fetch} [options.fetch] defaults to globalThis.fetch
 * @param {(transport: Transport) => void} [options.onTransport] called once, before the first event
 * @param {(info: {from: Transport, to: Transport, error: CoachStreamError}) => void} [options.onFallback]
 * @param {RecoveryOptions} [options.recovery] how long to look for the stored reply of a broken stream
 * @param {(info: {error: CoachStreamError, clientMessageId: string}) => void} [options.onRecovering]
 *   called once when a stream broke after its first event and its stored reply is being looked for
 * @returns {AsyncGenerator<CoachEvent, void, undefined>}
 */
export async function* streamCoachConversation(options) {
  const { userId, coachId, conversationId } = options;
  const path = `/users/${seg(userId)}/coaches/${seg(coachId)}/conversations/${seg(conversationId)}`;
  const messageTimestamp = options.body?.messageTimestamp ?? new Date().toISOString();
  const body = { ...withClientMessageId(options.body), messageTimestamp };
  yield* runTurn(options, {
    streamPath: `${path}/stream`,
    apiMethod: "POST",
    apiPath: `${path}/send-message`,
    recoveryPath: path,
    body,
    fromJson: (json) => ({ text: json.fullMessage, complete: conversationComplete(json) }),
    recovered: (json) => storedConversationReply(json, body, conversationId),
  });
}

/**
 * Streams one coach creator answer: yields `start`, `chunk`…, `progress`?, then `complete` or `error`.
 *
 * A `clientMessageId` is added to `body` when it has none; a stream that breaks after its first
 * event ends with the answer's stored reply, read back from the session (see "Recovery" above).
 *
 * @param {object} options
 * @param {string} [options.streamUrl] the Function URL (outputs' coachCreatorStreamUrl)
 * @param {string} [options.apiUrl] the HTTP API, for the fallbacks
 * @param {string} options.userId
 * @param {string} options.sessionId
 * @param {string} options.token
 * @param {{userResponse: string, messageTimestamp?: string, clientMessageId?: string, imageS3Keys?: string[]}} options.body
 * @param {AbortSignal} [options.signal]
 * @param {boolean} [options.useStreaming]
 * @param {typeof globalThis.fetch} [options.fetch]
 * @param {(transport: Transport) => void} [options.onTransport]
 * @param {(info: {from: Transport, to: Transport, error: CoachStreamError}) => void} [options.onFallback]
 * @param {RecoveryOptions} [options.recovery]
 * @param {(info: {error: CoachStreamError, clientMessageId: string}) => void} [options.onRecovering]
 * @returns {AsyncGenerator<CoachEvent, void, undefined>}
 */
export async function* streamCoachCreatorSession(options) {
  const path = `/users/${seg(options.userId)}/coach-creator-sessions/${seg(options.sessionId)}`;
  const body = withClientMessageId(options.body);
  const sentAt = Date.now();
  yield* runTurn(options, {
    streamPath: `${path}/stream`,
    apiMethod: "PUT",
    apiPath: path,
    recoveryPath: path,
    body,
    fromJson: (json) => ({ text: json.aiResponse, complete: { type: "complete", status: "finished", ...json } }),
    recovered: (session) => storedCreatorReply(session, body, sentAt),
  });
}

// --- the chain -------------------------------------------------------------------------------

async function* runTurn(options, route) {
  const { streamUrl, apiUrl, token, signal, useStreaming = true, onTransport, onFallback } = options;
  const fetch = options.fetch ?? globalThis.fetch;
  const payload = JSON.stringify(route.body);
  const attempts = [];
  if (useStreaming !== false && streamUrl) {
    attempts.push({ transport: "stream", method: "POST", url: trimSlash(streamUrl) + route.streamPath });
  }
  if (apiUrl) {
    const url = trimSlash(apiUrl) + route.apiPath;
    attempts.push({ transport: "buffered", method: route.apiMethod, url: `${url}?stream=true` });
    attempts.push({ transport: "json", method: route.apiMethod, url });
  }
  if (attempts.length === 0) throw new TypeError("streamUrl or apiUrl is required");

  for (let i = 0; i < attempts.length; i++) {
    const attempt = attempts[i];
    const sse = attempt.transport !== "json";
    const headers = { "Content-Type": "application/json", Accept: sse ? "text/event-stream" : "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    let failure;
    try {
      signal?.throwIfAborted();
      let response;
      try {
        response = await fetch(attempt.url, { method: attempt.method, headers, body: payload, signal });
      } catch (error) {
        const failed = networkError(error, signal, attempt.transport);
        throw failed instanceof CoachStreamError ? fallsBack(failed) : failed;
      }
      if (response.status >= 500) throw fallsBack(await errorFromResponse(response, attempt.transport));
      if (!response.ok) throw await errorFromResponse(response, attempt.transport); // a 4xx: never retried
      const events = sse ? readSse(response, signal, attempt.transport) : jsonEvents(response, route, attempt);
      let first = true;
      for await (const event of events) {
        if (first) {
          first = false;
          onTransport?.(attempt.transport);
        }
        yield event;
      }
      return;
    } catch (error) {
      if (!error?.[FALLS_BACK]) {
        if (!recoverable(error, options)) throw error;
        yield await recoverTurn(options, route, error);
        return;
      }
      delete error[FALLS_BACK];
      failure = error;
    }
    const next = attempts[i + 1];
    if (!next) throw failure;
    onFallback?.({ from: attempt.transport, to: next.transport, error: failure });
  }
}

/** The events of an SSE body; fallback-able CoachStreamErrors only before the first event. */
async function* readSse(response, signal, transport) {
  if (!response.body) {
    throw fallsBack(new CoachStreamError({ code: "STREAM_INCOMPLETE", message: "no body", transport }));
  }
  const reader = response.body.getReader();
  const queue = [];
  const parser = createSseParser((event) => queue.push(event));
  const onAbort = () => reader.cancel(signal.reason).catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  let yielded = false;
  try {
    for (;;) {
      signal?.throwIfAborted();
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        signal?.throwIfAborted();
        throw streamBroke(error, yielded, transport);
      }
      signal?.throwIfAborted(); // a cancelled reader reports done: say why
      if (chunk.done) break;
      try {
        parser.push(chunk.value);
      } catch (error) {
        const message = `unreadable event: ${error.message}`;
        throw new CoachStreamError({ code: "BAD_EVENT", message, transport, cause: error });
      }
      while (queue.length > 0) {
        const event = queue.shift();
        yielded = true;
        yield event;
        if (TERMINAL_TYPES.has(event.type)) return;
      }
    }
    parser.end();
    const message = yielded ? "the stream ended before the turn finished" : "the stream ended without any event";
    const incomplete = new CoachStreamError({ code: "STREAM_INCOMPLETE", message, transport });
    throw yielded ? incomplete : fallsBack(incomplete);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.cancel().catch(() => {}); // releases the connection; a no-op once the body is done
  }
}

/** The plain JSON answer, as the events the stream would have sent. */
async function* jsonEvents(response, route, attempt) {
  let json;
  try {
    json = await response.json();
  } catch (error) {
    throw new CoachStreamError({
      status: response.status,
      code: "BAD_RESPONSE",
      message: "the answer was not JSON",
      transport: attempt.transport,
      cause: error,
    });
  }
  const { text, complete } = route.fromJson(json);
  const requestId = response.headers.get("x-amzn-requestid") ?? response.headers.get("apigw-requestid");
  yield { type: "start", status: "initialized", requestId };
  if (text) yield { type: "chunk", content: text };
  yield complete;
}

// --- recovery: the stored reply of a turn whose stream broke ----------------------------------

function recoverable(error, options) {
  return (
    error instanceof CoachStreamError &&
    BROKE_AFTER_START.has(error.code) &&
    options.recovery !== false &&
    Boolean(options.apiUrl)
  );
}

/**
 * Reads the turn back with backoff until `route.recovered` finds its stored reply, or the time is
 * up. The message itself is never sent again.
 */
async function recoverTurn(options, route, broken) {
  const { timeoutMs, firstDelayMs, maxDelayMs } = { ...RECOVERY_DEFAULTS, ...options.recovery };
  const { token, signal } = options;
  const read = { token, signal, fetch: options.fetch ?? globalThis.fetch, transport: "recovery" };
  const url = trimSlash(options.apiUrl) + route.recoveryPath;
  options.onRecovering?.({ error: broken, clientMessageId: route.body.clientMessageId });
  const deadline = Date.now() + timeoutMs;
  let delay = firstDelayMs;
  let problem = null;
  for (;;) {
    try {
      const complete = route.recovered(await getJson(url, read));
      if (complete) return complete;
      problem = null;
    } catch (error) {
      if (!worthAnotherLook(error, signal)) throw error;
      problem = error;
    }
    const left = deadline - Date.now();
    if (left <= 0) break;
    await sleep(Math.min(delay, left), signal);
    delay = Math.min(delay * 2, maxDelayMs);
  }
  const seconds = Math.round(timeoutMs / 100) / 10;
  const last = problem ? `; the last read failed: ${problem.message}` : "";
  throw new CoachStreamError({
    code: "REPLY_NOT_RECOVERED",
    message: `the stream broke (${broken.message}) and no stored reply appeared within ${seconds} s${last}`,
    transport: "recovery",
    cause: broken,
  });
}

/** A failed read that another look may fix: the network, a 5xx, a 429, an answer that was not JSON. */
function worthAnotherLook(error, signal) {
  if (signal?.aborted) return false;
  if (error instanceof SyntaxError) return true;
  return error instanceof CoachStreamError && (error.status === 0 || error.status === 429 || error.status >= 500);
}

/**
 * The `complete` event of a conversation turn from `GET .../conversations/{id}`, or null while its
 * reply is not stored. The user message is the last one with the turn's `clientMessageId`, when the
 * API shows it, else with its content and `messageTimestamp`; its reply is the assistant message
 * after it (the last one not superseded), before the next user message.
 */
function storedConversationReply(json, body, conversationId) {
  const messages = Array.isArray(json?.messages) ? json.messages : [];
  const at = messages.findLastIndex((message) => message?.role === "user" && sameUserMessage(message, body));
  if (at === -1) return null;
  let reply = null;
  for (let i = at + 1; i < messages.length && messages[i]?.role !== "user"; i++) {
    if (messages[i]?.role === "assistant" && !messages[i].metadata?.superseded) reply = messages[i];
  }
  if (!reply) return null;
  const complete = conversationComplete({
    conversationId: json.conversation?.conversationId ?? conversationId,
    userMessage: messages[at],
    aiMessage: reply,
    fullMessage: reply.content ?? "",
  });
  return recoveredEvent(complete, reply.metadata?.status);
}

function sameUserMessage(message, body) {
  if (message.clientMessageId) return message.clientMessageId === body.clientMessageId;
  return (
    String(message.content ?? "").trim() === String(body.userResponse ?? "").trim() &&
    Date.parse(message.timestamp) === Date.parse(body.messageTimestamp)
  );
}

/**
 * The `complete` event of a creator answer from `GET .../coach-creator-sessions/{id}`, or null while
 * it is not recorded: the `history` entry with the answer's `clientMessageId`. A server whose history
 * shows no `clientMessageId` at all is matched by the answer's text, answered after it was sent
 * (allowing five minutes of clock skew).
 */
function storedCreatorReply(session, body, sentAt) {
  const history = Array.isArray(session?.history) ? session.history : [];
  const shown = history.some((entry) => entry?.clientMessageId);
  const at = history.findLastIndex((entry) =>
    shown
      ? entry?.clientMessageId === body.clientMessageId
      : String(entry?.answer ?? "").trim() === String(body.userResponse ?? "").trim() &&
        Date.parse(entry.answeredAt) >= sentAt - 300_000,
  );
  if (at === -1) return null;
  const entry = history[at];
  const isComplete = Boolean(session.isComplete);
  const complete = {
    type: "complete",
    status: "finished",
    sessionId: session.sessionId,
    aiResponse: entry.aiResponse ?? "",
    isComplete,
    nextQuestion: at === history.length - 1 ? (session.currentQuestion?.text ?? null) : null,
    progressDetails: session.progressDetails,
    coachConfigGenerating: isComplete && !["ready", "failed"].includes(session.coachConfigStatus),
  };
  return recoveredEvent(complete, entry.status);
}

function recoveredEvent(complete, status) {
  return { ...complete, recovered: true, replyStatus: status ?? "complete" };
}

// --- helpers ---------------------------------------------------------------------------------

/** A conversation's `complete` event from a stored or answered turn. */
function conversationComplete({ conversationId, userMessage, aiMessage, fullMessage }) {
  return {
    type: "complete",
    status: "finished",
    conversationId,
    messageId: aiMessage?.id,
    fullMessage,
    userMessage,
    aiMessage,
  };
}

function withClientMessageId(body) {
  return { ...body, clientMessageId: body?.clientMessageId ?? newClientMessageId() };
}

/** `GET url` as JSON; a CoachStreamError (or the abort reason) when it fails. */
async function getJson(url, { token, fetch, signal, transport }) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { headers, signal });
  } catch (error) {
    throw networkError(error, signal, transport);
  }
  if (!response.ok) throw await errorFromResponse(response, transport);
  return response.json();
}

/** Waits `ms`; an abort of `signal` rejects with its reason. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function fallsBack(error) {
  error[FALLS_BACK] = true;
  return error;
}

function streamBroke(error, yielded, transport) {
  const broke = new CoachStreamError({
    code: yielded ? "STREAM_INTERRUPTED" : "NETWORK_ERROR",
    message: `the connection broke: ${error?.message ?? error}`,
    transport,
    cause: error,
  });
  return yielded ? broke : fallsBack(broke);
}

/** A fetch that rejected: the abort reason as is, anything else a NETWORK_ERROR. */
function networkError(error, signal, transport) {
  if (signal?.aborted) return signal.reason;
  if (error?.name === "AbortError") return error;
  const message = `network error: ${error?.message ?? error}`;
  return new CoachStreamError({ code: "NETWORK_ERROR", message, transport, cause: error });
}

/**
 * The code of an error answer that is not the contract's `{"error": {...}}`: API Gateway's own (a JWT
 * authorizer's `401 {"message":"Unauthorized"}`, a throttled stage's `429 {"message":"Too Many Requests"}`)
 * and Lambda's (a throttled Function URL's `429 {"Message":"Rate Exceeded."}`), told apart by status only.
 */
const CODES_BY_STATUS = {
  401: "UNAUTHORIZED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  413: "PAYLOAD_TOO_LARGE",
  429: "RATE_LIMITED",
};

/**
 * The CoachStreamError of an HTTP error answer, whoever wrote it: our functions'
 * `{"error": {"code", "message"}}`, or API Gateway's or Lambda's own bodies (`{"message"}` or
 * `{"Message"}`), coded by status. `retryAfter` is a Retry-After header's seconds (or its date, as
 * seconds from now), else null; a gateway's 401 says why in `www-authenticate` when it is readable.
 *
 * @param {Response} response an answer that is not ok
 * @param {Transport|"recovery"|null} [transport]
 * @returns {Promise<CoachStreamError>}
 */
export async function errorFromResponse(response, transport = null) {
  let code = CODES_BY_STATUS[response.status] ?? `HTTP_${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (typeof body?.error?.code === "string") code = body.error.code;
    const text = body?.error?.message ?? body?.message ?? body?.Message;
    if (typeof text === "string" && text) message = text;
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401) message = authenticateError(response.headers) ?? message;
  const retryAfter = retryAfterSeconds(response.headers.get("retry-after"));
  return new CoachStreamError({ status: response.status, code, message, retryAfter, transport });
}

/** `error_description` of a `www-authenticate: Bearer ... error_description="..."` header, if any. */
function authenticateError(headers) {
  const found = /error_description="([^"]*)"/.exec(headers.get("www-authenticate") ?? "");
  return found && found[1] ? found[1] : null;
}

/** Retry-After as whole seconds: delta-seconds, or an HTTP date from now (never negative); else null. */
function retryAfterSeconds(value) {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function newClientMessageId() {
  const uuid = globalThis.crypto?.randomUUID?.();
  if (uuid) return uuid;
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

function seg(value) {
  if (typeof value !== "string" || value === "") throw new TypeError("ids must be non-empty strings");
  return encodeURIComponent(value);
}

function trimSlash(url) {
  return String(url).replace(/\/+$/, "");
}
