// What the demo tells a person about an error: every shape the client types (CONTRACT.md, and API
// Gateway's and Lambda's own 401 and 429), and a mid-stream `error` event. No DOM here, so Node's test
// runner can check it (`web/test/demo-errors.test.js`).

function retrySeconds(error) {
  const value = error.retryAfter ?? error.retryAfterSeconds ?? error.headers?.get?.('Retry-After');
  const seconds = Number.parseInt(value, 10);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

/** What to tell a person about an error (a thrown error or a mid-stream `error` event). */
export function describeError(error) {
  const code = error?.code;
  const status = error?.status;
  if (error?.name === 'AbortError') return null;
  if (code === 'UNAUTHORIZED' || status === 401) return 'Your session expired — sign in again.';
  if (code === 'RATE_LIMITED' || status === 429) {
    // Our functions say when (Retry-After); API Gateway's and Lambda's throttles do not.
    const seconds = retrySeconds(error);
    if (seconds === null) return 'The service is busy — wait a few seconds and try again.';
    return `Too many requests in the last minute — wait ${Math.max(1, seconds)} s and try again.`;
  }
  if (code === 'FORBIDDEN' || status === 403) return 'This account may not open that coach or conversation.';
  if (code === 'NOT_FOUND' || status === 404) return 'That coach, conversation or interview no longer exists.';
  if (code === 'CONFLICT' || status === 409) {
    return 'This interview changed in another tab (or is already finished) — reload to continue.';
  }
  if (code === 'PAYLOAD_TOO_LARGE' || status === 413) return 'That message is too long — please shorten it.';
  if (code === 'VALIDATION_ERROR' || status === 400) {
    return `The server did not accept that message: ${error.message || 'invalid request'}.`;
  }
  if (code === 'MODEL_UNAVAILABLE') return 'The coach is unavailable right now — try again in a minute.';
  if (code === 'MODEL_STREAM_INTERRUPTED') return 'The coach was cut off mid-reply; the part you see was saved.';
  if (code === 'TIMEOUT') return 'The reply took too long and was cut short; the part you see was saved.';
  if (code === 'STREAMING_DISABLED') return 'Streaming is switched off on the server right now.';
  if (code === 'REPLY_NOT_RECOVERED') {
    return 'The connection dropped mid-reply and the saved reply did not show up in time — reopen the conversation later to see it.';
  }
  if (code === 'STREAM_INTERRUPTED' || code === 'STREAM_INCOMPLETE') {
    return 'The connection dropped mid-reply — the coach saves the reply; reopen the conversation to see it.';
  }
  if (code === 'NETWORK_ERROR' || error instanceof TypeError || (status === 0 && !code)) {
    return 'Can’t reach the server — is `make dev` still running?';
  }
  if (typeof status === 'number' && status >= 500) return 'Something went wrong on the server — please try again.';
  return `Something went wrong: ${error?.message || error}`;
}
