// Streams one turn of a conversation from a running stack through streamCoachConversation and
// prints each event as a JSON line on stdout (the transport used, each request made and a recovery
// go to stderr).
//
//   node web/test/live-conversation.mjs --stream-url URL --api-url URL --token TOKEN \
//        --user-id U --coach-id C --conversation-id ID [--message TEXT] [--no-streaming] \
//        [--drop-after-first-chunk]
//
// --drop-after-first-chunk breaks the stream's connection after its first chunk (see
// dropping-fetch.mjs): the client then recovers the reply the server stores.
//
// Each option may come from the environment instead: STREAM_URL, API_URL, TOKEN, USER_ID,
// COACH_ID, CONVERSATION_ID, MESSAGE. tests/integration/test_web_client_against_stack.py runs it.
// `node --test web/test/` also loads this file (it lies in a test folder): without a stack to talk
// to, it then registers one skipped test instead of failing.
import { parseArgs } from "node:util";

import { CoachStreamError, streamCoachConversation } from "../coach-stream-client.js";
import { dropStreamAfterFirstChunk } from "./dropping-fetch.mjs";

const { values } = parseArgs({
  options: {
    "stream-url": { type: "string", default: process.env.STREAM_URL },
    "api-url": { type: "string", default: process.env.API_URL },
    token: { type: "string", default: process.env.TOKEN },
    "user-id": { type: "string", default: process.env.USER_ID },
    "coach-id": { type: "string", default: process.env.COACH_ID },
    "conversation-id": { type: "string", default: process.env.CONVERSATION_ID },
    message: { type: "string", default: process.env.MESSAGE ?? "I did 5x5 squats at 100kg today, what next?" },
    "no-streaming": { type: "boolean", default: false },
    "drop-after-first-chunk": { type: "boolean", default: false },
  },
});

const required = ["token", "user-id", "coach-id", "conversation-id"];
const missing = required.filter((name) => !values[name]);
if (!values["stream-url"] && !values["api-url"]) missing.push("stream-url or api-url");

if (missing.length > 0 && process.env.NODE_TEST_CONTEXT) {
  const { test } = await import("node:test");
  test("live conversation against a running stack", {
    skip: "needs a running stack: tests/integration/test_web_client_against_stack.py runs it",
  });
} else if (missing.length > 0) {
  process.stderr.write(`missing: ${missing.join(", ")}\n`);
  process.exitCode = 2;
} else {
  const network = values["drop-after-first-chunk"] ? dropStreamAfterFirstChunk(globalThis.fetch) : globalThis.fetch;
  const fetch = (url, init) => {
    process.stderr.write(`request: ${init?.method ?? "GET"} ${new URL(url).pathname}\n`);
    return network(url, init);
  };
  try {
    const events = streamCoachConversation({
      streamUrl: values["stream-url"],
      apiUrl: values["api-url"],
      userId: values["user-id"],
      coachId: values["coach-id"],
      conversationId: values["conversation-id"],
      token: values.token,
      body: { userResponse: values.message },
      useStreaming: !values["no-streaming"],
      fetch,
      recovery: { timeoutMs: 30_000, firstDelayMs: 200, maxDelayMs: 2_000 },
      onRecovering: ({ error }) => process.stderr.write(`recovering: ${error.code}\n`),
      onTransport: (transport) => process.stderr.write(`transport: ${transport}\n`),
      onFallback: ({ from, to, error }) => process.stderr.write(`fallback: ${from} -> ${to} (${error.message})\n`),
    });
    for await (const event of events) process.stdout.write(`${JSON.stringify(event)}\n`);
  } catch (error) {
    const detail = error instanceof CoachStreamError ? `${error.status} ${error.code}: ${error.message}` : error;
    process.stderr.write(`failed: ${detail}\n`);
    process.exitCode = 1;
  }
}
