// A `fetch` that drops the connection of a reply stream right after its first `chunk` event, as a
// network would: the stream's reader then rejects, and the real body is cancelled, so the server
// sees its client leave mid-reply. Only POSTs to `.../stream` are touched; every other call passes.
//
// Node (web/test/live-conversation.mjs) calls it as a module; the browser driver
// (tests/integration/browser/drive-demo.mjs) injects its source into the page, so the function
// uses nothing from outside itself.
//
// `node --test web/test/` loads this file too: it defines no test.

/**
 * @param {typeof globalThis.fetch} fetch the real fetch
 * @returns {typeof globalThis.fetch}
 */
export function dropStreamAfterFirstChunk(fetch) {
  return async function droppingFetch(input, init) {
    const response = await fetch(input, init);
    const url = new URL(input instanceof Request ? input.url : String(input), globalThis.location?.href);
    const method = String(init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
    if (method !== "POST" || !url.pathname.endsWith("/stream") || !response.body) return response;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let seen = "";
    let drop = false;
    const body = new ReadableStream({
      async pull(controller) {
        if (drop) {
          reader.cancel().catch(() => {});
          controller.error(new TypeError("network error: the connection dropped"));
          return;
        }
        const { done, value } = await reader.read();
        if (done) {
          controller.close();
          return;
        }
        controller.enqueue(value); // erroring now would discard it: the drop comes with the next read
        seen += decoder.decode(value, { stream: true });
        const chunk = seen.search(/"type"\s*:\s*"chunk"/);
        drop = chunk !== -1 && /\r?\n\r?\n/.test(seen.slice(chunk));
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}
