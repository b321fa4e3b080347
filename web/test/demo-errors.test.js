// The demo's words for every error answer the client types: `node --test web/test/`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { errorFromResponse } from "../coach-stream-client.js";
import { describeError } from "../demo/errors.js";

const JSON_HEADERS = { "Content-Type": "application/json" };
const answer = (status, body, headers = {}) =>
  new Response(typeof body === "string" ? body : JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });

describe("the demo's message for each answer", () => {
  const cases = [
    ["our 401", answer(401, { error: { code: "UNAUTHORIZED", message: "token expired" } }), /sign in again/],
    [
      "API Gateway's JWT authorizer 401",
      answer(401, { message: "Unauthorized" }, { "www-authenticate": 'Bearer error="invalid_token"' }),
      /sign in again/,
    ],
    [
      "our 429 with Retry-After",
      answer(429, { error: { code: "RATE_LIMITED", message: "too many requests" } }, { "Retry-After": "42" }),
      /wait 42 s/,
    ],
    ["API Gateway's throttle", answer(429, { message: "Too Many Requests" }), /wait a few seconds/],
    ["a throttled Function URL", answer(429, { Message: "Rate Exceeded." }), /wait a few seconds/],
    ["a Retry-After of 0", answer(429, { error: { code: "RATE_LIMITED", message: "x" } }, { "Retry-After": "0" }), /wait 1 s/],
    ["our 403", answer(403, { error: { code: "FORBIDDEN", message: "no" } }), /may not open/],
    ["a Function URL's 413", answer(413, { Message: "Request must be smaller than 6291456 bytes" }), /too long/],
  ];
  for (const [name, response, expected] of cases) {
    test(name, async () => {
      assert.match(describeError(await errorFromResponse(response)), expected);
    });
  }

  test("a mid-stream error event and an abort", () => {
    assert.match(describeError({ type: "error", code: "TIMEOUT", message: "t" }), /too long and was cut short/);
    assert.equal(describeError(new DOMException("stopped", "AbortError")), null);
  });
});
