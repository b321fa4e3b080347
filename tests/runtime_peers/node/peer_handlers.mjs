// Handlers for AWS's Node.js runtime interface client (aws-lambda-ric): what a Node function in
// Lambda would write, case by case. tests/runtime_peers/python/peer_handlers.py writes the same cases
// through our Python runtime, and tests/integration/test_runtime_peers.py compares what a client of
// the local Function URL gets from each.
//
// `stream` (streamified) picks a case by the request's path; `buffered` is a plain async handler.
// `awslambda` is the global the client defines before it loads this module.

const RUNTIME = "node";
const COOKIES = ["peer_a=1; Path=/", "peer_b=2; Path=/; HttpOnly"];
const TEXT = "text/plain; charset=utf-8";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function headers(caseName, contentType = TEXT) {
  const all = { "x-peer-case": caseName, "x-peer-runtime": RUNTIME };
  if (contentType) all["content-type"] = contentType;
  return all;
}

// 201, headers and two cookies in the prelude; five chunks 100 ms apart.
async function prelude(event, responseStream) {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: headers("prelude"),
    cookies: COOKIES,
  });
  for (let index = 0; index < 5; index += 1) {
    if (index > 0) await sleep(100);
    stream.write(`chunk ${index}\n`);
  }
  stream.end();
}

// Two chunks out, then a throw: the client can only report it in the stream's trailers.
async function throwMidStream(event, responseStream) {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 200,
    headers: headers("throw-mid-stream"),
    cookies: COOKIES,
  });
  stream.write("partial 0\n");
  await sleep(50);
  stream.write("partial 1\n");
  await sleep(50);
  throw new Error("boom mid-stream");
}

// As throwMidStream, but the client asks for the next event as soon as the failed stream's end is
// written, without waiting for the Runtime API's answer to it (an empty event loop).
async function throwMidStreamEarlyNext(event, responseStream, context) {
  context.callbackWaitsForEmptyEventLoop = false;
  await throwMidStream(event, responseStream);
}

// The prelude is set, but it only goes out with the first write, and there is none.
async function throwBeforeWrite(event, responseStream) {
  awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: headers("throw-before-write"),
    cookies: COOKIES,
  });
  await sleep(10);
  throw new Error("boom before the first write");
}

// No HttpResponseStream.from: a raw stream, posted with the content type the handler sets.
async function noPrelude(event, responseStream) {
  responseStream.setContentType("text/plain");
  for (let index = 0; index < 3; index += 1) {
    if (index > 0) await sleep(50);
    responseStream.write(`raw ${index}\n`);
  }
  responseStream.end();
}

// A prelude with headers and cookies, and no statusCode.
async function preludeWithoutStatus(event, responseStream) {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    headers: headers("prelude-without-status"),
    cookies: COOKIES,
  });
  stream.write("no status 0\n");
  await sleep(20);
  stream.write("no status 1\n");
  stream.end();
}

const CASES = {
  "/prelude": prelude,
  "/throw-mid-stream": throwMidStream,
  "/throw-mid-stream-early-next": throwMidStreamEarlyNext,
  "/throw-before-write": throwBeforeWrite,
  "/no-prelude": noPrelude,
  "/prelude-without-status": preludeWithoutStatus,
};

export const stream = awslambda.streamifyResponse(async (event, responseStream, context) => {
  const handler = CASES[event.rawPath];
  if (handler === undefined) throw new Error(`no case for ${event.rawPath}`);
  await handler(event, responseStream, context);
});

// Not streamified: the client posts the returned object as one buffered response.
export const buffered = async () => ({
  statusCode: 202,
  headers: headers("buffered", "application/json"),
  cookies: COOKIES,
  body: JSON.stringify({ peer: "buffered", ok: true }),
});
