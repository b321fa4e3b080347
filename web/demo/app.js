// The demo page: sign in as the local demo user, chat with a coach over the stream, and create a
// coach through the interview. Plain DOM code on top of the JS client; no framework, no build step.

import {
  CoachStreamError,
  errorFromResponse,
  fetchConfig,
  streamCoachConversation,
  streamCoachCreatorSession,
} from '/web/coach-stream-client.js';
import { describeError } from './errors.js';

const $ = (selector) => document.querySelector(selector);

const state = {
  session: null, // { apiUrl, coachConversationStreamUrl, coachCreatorStreamUrl, demo, token }
  userId: null,
  useStreaming: true,
  chat: { coachId: null, conversationId: null },
  creator: { sessionId: null, question: null, complete: false },
  running: null, // the AbortController of the turn in flight, if any
};

// --- errors in words: ./errors.js (`describeError`) -------------------------------------------

function showError(error) {
  const text = typeof error === 'string' ? error : describeError(error);
  if (!text) return;
  $('#error-text').textContent = text;
  $('#error').hidden = false;
  $('#error').dataset.code = error?.code || String(error?.status ?? '');
  if (error?.code === 'UNAUTHORIZED' || error?.status === 401) setSignedIn(false);
}

function clearError() {
  $('#error').hidden = true;
  $('#error-text').textContent = '';
}

// --- the API -------------------------------------------------------------------------------------

/** The API's origin: the page's own when it is served by the API front door (no CORS needed). */
function apiUrl() {
  const configured = new URL(state.session.apiUrl);
  return configured.port === location.port ? location.origin : state.session.apiUrl.replace(/\/$/, '');
}

async function api(method, path, body) {
  let response;
  try {
    response = await fetch(`${apiUrl()}${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${state.session.token}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (cause) {
    throw new CoachStreamError({ code: 'NETWORK_ERROR', message: String(cause?.message || cause), cause });
  }
  // The client's reading of an error answer: ours, API Gateway's (401, 429) or Lambda's, all typed alike.
  if (!response.ok) throw await errorFromResponse(response);
  return response.json().catch(() => ({}));
}

const userPath = () => `/users/${encodeURIComponent(state.userId)}`;

// --- signing in --------------------------------------------------------------------------------

async function signIn() {
  clearError();
  const button = $('#sign-in');
  button.disabled = true;
  button.textContent = 'Signing in…';
  try {
    let response;
    try {
      response = await fetch(new URL('session.json', location.href), { cache: 'no-store' });
    } catch (cause) {
      throw new CoachStreamError({ code: 'NETWORK_ERROR', message: String(cause), cause });
    }
    if (!response.ok) {
      const message = 'the local stack refused the demo sign-in';
      throw new CoachStreamError({ status: response.status, code: 'SIGN_IN_REFUSED', message });
    }
    state.session = await response.json();
    state.userId = state.session.demo.userId;
    setSignedIn(true);
    await loadConfig();
    if (!state.chat.coachId) {
      await openConversation(state.session.demo.coachId, state.session.demo.conversationId);
    }
  } catch (error) {
    showError(error);
  } finally {
    button.disabled = false;
    button.textContent = state.session ? 'Sign in again' : 'Sign in as the demo user';
  }
}

function setSignedIn(signedIn) {
  $('#app').dataset.signedIn = String(signedIn);
  $('#who').hidden = !signedIn;
  $('#who').textContent = signedIn ? `Signed in as ${state.userId}` : '';
  $('#sign-in').classList.toggle('primary', !signedIn);
  $('#sign-in').classList.toggle('ghost', signedIn);
  if (!signedIn && state.session) state.session.token = null;
  updateControls();
}

async function loadConfig() {
  try {
    const config = await fetchConfig({ apiUrl: apiUrl(), token: state.session.token });
    state.useStreaming = config?.useStreaming ?? config?.features?.streamingEnabled ?? true;
  } catch {
    state.useStreaming = true; // the client falls back by itself if the stream is refused
  }
  $('#mode').textContent = state.useStreaming
    ? 'Replies stream from the Function URL as Server-Sent Events.'
    : 'Streaming is off for this user: replies come from the fallback API.';
}

// --- the chat ------------------------------------------------------------------------------------

async function openConversation(coachId, conversationId) {
  state.chat = { coachId: null, conversationId: null }; // nothing can be sent while it loads
  updateControls();
  const [coach, conversation] = await Promise.all([
    api('GET', `${userPath()}/coaches/${encodeURIComponent(coachId)}`).catch(() => null),
    api('GET', `${userPath()}/coaches/${encodeURIComponent(coachId)}/conversations/${encodeURIComponent(conversationId)}`),
  ]);
  const name = coach?.name || 'Your coach';
  $('#coach-name').textContent = name;
  $('#coach-avatar').textContent = initials(name);
  $('#coach-focus').textContent = coach?.programFocus || 'Ask anything about your training.';
  $('#messages').replaceChildren();
  $('#chat-empty').hidden = false;
  for (const message of conversation.messages || []) {
    const item = addMessage('#messages', message.role === 'user' ? 'user' : 'assistant', message.content);
    item.dataset.status = 'complete';
  }
  state.chat = { coachId, conversationId };
  Object.assign($('#chat-panel').dataset, { coachId, conversationId });
  updateControls();
  scrollToEnd('#chat-scroller');
  $('#message').focus();
}

async function newConversation() {
  clearError();
  try {
    const created = await api('POST', `${userPath()}/coaches/${encodeURIComponent(state.chat.coachId)}/conversations`, {});
    await openConversation(state.chat.coachId, created.conversationId);
  } catch (error) {
    showError(error);
  }
}

async function sendMessage(event) {
  event?.preventDefault();
  const text = $('#message').value.trim();
  if (!text || state.running || !state.session?.token) return;
  clearError();
  $('#message').value = '';
  addMessage('#messages', 'user', text).dataset.status = 'complete';
  const reply = addMessage('#messages', 'assistant', '');
  const turn = new Turn(reply, '#chat-scroller');
  await run(turn, () => streamCoachConversation({
    streamUrl: state.session.coachConversationStreamUrl,
    apiUrl: apiUrl(),
    userId: state.userId,
    coachId: state.chat.coachId,
    conversationId: state.chat.conversationId,
    token: state.session.token,
    body: { userResponse: text },
    signal: state.running.signal,
    useStreaming: state.useStreaming,
    onTransport: (transport) => turn.via(transport),
    onRecovering: () => turn.recovering(),
  }), (complete) => turn.finish(complete.fullMessage ?? complete.aiMessage?.content, complete));
  $('#message').focus();
}

/**
 * Drives one streamed turn: start, events, and whatever way it ends. The client sends the message
 * once: a stream that breaks mid-reply ends with the reply read back from the store (`recovered`).
 */
async function run(turn, open, onComplete) {
  state.running = new AbortController();
  updateControls();
  try {
    for await (const event of open()) {
      if (event.type === 'start') turn.started(event);
      else if (event.type === 'contextual') turn.contextual(event.content);
      else if (event.type === 'chunk') turn.append(event.content);
      else if (event.type === 'progress') updateProgress(event.progressDetails);
      else if (event.type === 'complete') onComplete(event);
      else if (event.type === 'error') {
        turn.fail(event);
        showError(event);
      }
    }
    if (turn.status === 'streaming') turn.fail({ code: 'INTERNAL_ERROR', message: 'the stream ended early' });
  } catch (error) {
    if (error?.name === 'AbortError' || state.running?.signal.aborted) {
      turn.stop();
    } else {
      turn.fail(error);
      showError(error);
    }
  } finally {
    state.running = null;
    updateControls();
  }
}

function stop() {
  state.running?.abort();
}

const TRANSPORTS = { buffered: 'via the API (buffered)', json: 'via the API (no streaming)' };
const RECOVERED = {
  complete: 'recovered after the connection dropped',
  interrupted: 'recovered after the connection dropped · the coach was cut off mid-reply',
  timeout: 'recovered after the connection dropped · the reply was cut short (it took too long)',
};

/** One assistant message while its reply streams in. */
class Turn {
  constructor(element, scroller) {
    this.element = element;
    this.scroller = scroller;
    this.text = element.querySelector('.text');
    this.lines = element.querySelector('.contextual');
    this.content = '';
    this.status = 'streaming';
    this.sentAt = performance.now();
    this.firstChunkAt = null;
    element.dataset.status = 'streaming';
    element.querySelector('.bubble').append(cursor());
  }

  via(transport) {
    this.transport = transport;
    this.element.dataset.transport = transport;
  }

  started(event) {
    if (event.requestId) this.element.dataset.requestId = event.requestId;
  }

  contextual(content) {
    const line = document.createElement('li');
    line.textContent = content;
    this.lines.append(line);
    this.lines.hidden = false;
    scrollToEnd(this.scroller);
  }

  append(content) {
    if (this.firstChunkAt === null) this.firstChunkAt = performance.now();
    this.content += content;
    this.text.textContent = this.content;
    this.element.dataset.length = String(this.content.length);
    scrollToEnd(this.scroller);
  }

  /** The stream broke: the client is reading the saved reply back. */
  recovering() {
    this.element.dataset.status = 'recovering';
    this.meta('Connection lost — fetching the saved reply…');
  }

  /** The whole reply: a recovered one replaces whatever part of it had streamed in. */
  finish(fullMessage, complete) {
    if (typeof fullMessage === 'string') {
      this.content = fullMessage;
      this.text.textContent = fullMessage;
      this.element.dataset.length = String(fullMessage.length);
    }
    this.end('complete');
    const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
    const parts = [];
    if (this.firstChunkAt !== null) parts.push(`first words after ${seconds(this.firstChunkAt - this.sentAt)}`);
    parts.push(`done in ${seconds(performance.now() - this.sentAt)}`);
    if (this.transport && this.transport !== 'stream') parts.push(TRANSPORTS[this.transport] || this.transport);
    if (complete?.aiMessage?.metadata?.fallback) parts.push('fallback model');
    if (complete?.recovered) {
      this.element.dataset.recovered = 'true';
      this.element.dataset.replyStatus = complete.replyStatus;
      parts.push(RECOVERED[complete.replyStatus] || RECOVERED.complete);
    }
    this.meta(parts.join(' · '));
    this.collapseContextual();
  }

  fail(error) {
    this.end('error');
    this.meta(this.content ? 'Interrupted' : 'No reply');
    this.collapseContextual();
    if (!this.content) this.text.textContent = '…';
    this.element.dataset.code = error?.code || '';
  }

  stop() {
    this.end('stopped');
    this.meta('Stopped — the coach keeps writing on the server and saves the reply');
    this.collapseContextual();
  }

  end(status) {
    this.status = status;
    this.element.dataset.status = status;
    this.element.querySelector('.cursor')?.remove();
  }

  meta(text) {
    const meta = this.element.querySelector('.meta');
    meta.textContent = text;
    meta.hidden = false;
  }

  /** Progress lines are not part of the reply: fold them away once the reply is done. */
  collapseContextual() {
    const count = this.lines.children.length;
    if (!count) return;
    const details = document.createElement('details');
    details.className = 'worklog';
    const summary = document.createElement('summary');
    summary.textContent = count === 1 ? '1 step' : `${count} steps`;
    details.append(summary, this.lines);
    this.element.querySelector('.bubble').prepend(details);
  }
}

// --- the coach creator -----------------------------------------------------------------------------

async function startInterview() {
  clearError();
  $('#creator-start').disabled = true;
  try {
    const created = await api('POST', `${userPath()}/coach-creator-sessions`, {});
    state.creator = { sessionId: created.sessionId, question: created.question?.text, complete: false };
    $('#creator-messages').replaceChildren();
    $('#creator-done').hidden = true;
    $('#talk-to-coach').hidden = true;
    addMessage('#creator-messages', 'assistant', created.question?.text || 'Tell me about yourself.')
      .dataset.status = 'complete';
    updateProgress(created.progressDetails || { percentage: 0 });
    $('#creator-start').textContent = 'Start over';
    $('#creator-answer').focus();
  } catch (error) {
    showError(error);
  } finally {
    updateControls();
  }
}

async function answerQuestion(event) {
  event?.preventDefault();
  const text = $('#creator-answer').value.trim();
  if (!text || state.running || !state.creator.sessionId || state.creator.complete) return;
  clearError();
  $('#creator-answer').value = '';
  addMessage('#creator-messages', 'user', text).dataset.status = 'complete';
  const turn = new Turn(addMessage('#creator-messages', 'assistant', ''), '#creator-scroller');
  await run(turn, () => streamCoachCreatorSession({
    streamUrl: state.session.coachCreatorStreamUrl,
    apiUrl: apiUrl(),
    userId: state.userId,
    sessionId: state.creator.sessionId,
    token: state.session.token,
    body: { userResponse: text },
    signal: state.running.signal,
    useStreaming: state.useStreaming,
    onTransport: (transport) => turn.via(transport),
    onRecovering: () => turn.recovering(),
  }), (complete) => {
    turn.finish(complete.aiResponse, complete);
    if (complete.progressDetails) updateProgress(complete.progressDetails);
    if (complete.nextQuestion && !normalize(complete.aiResponse).includes(normalize(complete.nextQuestion))) {
      const question = addMessage('#creator-messages', 'assistant', complete.nextQuestion);
      question.dataset.status = 'complete';
      question.classList.add('question');
    }
    state.creator.question = complete.nextQuestion;
    if (complete.isComplete) {
      state.creator.complete = true;
      waitForCoach(state.creator.sessionId);
    }
  });
  $('#creator-answer').focus();
}

function updateProgress(details) {
  if (!details) return;
  const percentage = Math.max(0, Math.min(100, Math.round(details.percentage ?? 0)));
  const progress = $('#creator-progress');
  progress.hidden = false;
  progress.dataset.percentage = String(percentage);
  $('#creator-progress-bar').style.width = `${percentage}%`;
  const of = details.totalQuestions ? ` · ${details.questionsCompleted ?? 0} of ~${details.totalQuestions} questions` : '';
  const level = details.sophisticationLevel ? ` · ${details.sophisticationLevel.toLowerCase()}` : '';
  $('#creator-progress-label').textContent = `${percentage}%${of}${level}`;
}

/** The coach is built after the interview, in the background: poll until the session names it. */
async function waitForCoach(sessionId) {
  const done = $('#creator-done');
  done.hidden = false;
  done.dataset.status = 'building';
  $('#creator-done-text').textContent = 'Building your coach…';
  updateControls();
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && state.creator.sessionId === sessionId) {
    try {
      const session = await api('GET', `${userPath()}/coach-creator-sessions/${encodeURIComponent(sessionId)}`);
      if (session.coachId) {
        state.creator.coachId = session.coachId;
        const coach = await api('GET', `${userPath()}/coaches/${encodeURIComponent(session.coachId)}`).catch(() => null);
        done.dataset.status = 'ready';
        $('#creator-done-text').textContent = `${coach?.name || 'Your coach'} is ready.`;
        $('#talk-to-coach').hidden = false;
        scrollToEnd('#creator-scroller');
        return;
      }
    } catch (error) {
      showError(error);
      if (error.status && error.status < 500) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  if (state.creator.sessionId === sessionId) {
    done.dataset.status = 'slow';
    $('#creator-done-text').textContent = 'Your coach is taking longer than usual to build — check back soon.';
  }
}

async function talkToNewCoach() {
  clearError();
  try {
    const coachId = state.creator.coachId;
    const created = await api('POST', `${userPath()}/coaches/${encodeURIComponent(coachId)}/conversations`, {});
    showTab('chat');
    await openConversation(coachId, created.conversationId);
  } catch (error) {
    showError(error);
  }
}

// --- small pieces ----------------------------------------------------------------------------------

function addMessage(list, role, text) {
  const item = document.createElement('li');
  item.className = `message ${role}`;
  const bubble = document.createElement('div');
  bubble.className = 'bubble';
  if (role === 'assistant') {
    const lines = document.createElement('ul');
    lines.className = 'contextual';
    lines.hidden = true;
    bubble.append(lines);
  }
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  bubble.append(body);
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.hidden = true;
  item.append(bubble, meta);
  $(list).append(item);
  const empty = list === '#messages' ? '#chat-empty' : '#creator-empty';
  $(empty).hidden = true;
  return item;
}

function cursor() {
  const span = document.createElement('span');
  span.className = 'cursor';
  span.setAttribute('aria-hidden', 'true');
  return span;
}

function scrollToEnd(selector) {
  const scroller = $(selector);
  scroller.scrollTop = scroller.scrollHeight;
}

function initials(name) {
  return name.replace(/^coach\s+/i, '').split(/\s+/).map((word) => word[0] || '').join('').slice(0, 2).toUpperCase() || '?';
}

function normalize(text) {
  return String(text || '').toLowerCase().replace(/\s+/g, ' ').trim();
}

function updateControls() {
  const signedIn = Boolean(state.session?.token);
  const busy = Boolean(state.running);
  const chatting = signedIn && Boolean(state.chat.conversationId);
  $('#message').disabled = !chatting;
  $('#send').disabled = !chatting || busy;
  $('#new-conversation').disabled = !chatting || busy;
  $('#creator-start').disabled = !signedIn || busy;
  const answering = signedIn && Boolean(state.creator.sessionId) && !state.creator.complete;
  $('#creator-answer').disabled = !answering;
  $('#creator-send').disabled = !answering || busy;
  const chatTab = !$('#chat-panel').hidden;
  $('#stop').hidden = !(busy && chatTab);
  $('#creator-stop').hidden = !(busy && !chatTab);
  $('#tab-creator').disabled = false;
}

function showTab(name) {
  const chat = name === 'chat';
  $('#chat-panel').hidden = !chat;
  $('#creator-panel').hidden = chat;
  $('#tab-chat').setAttribute('aria-selected', String(chat));
  $('#tab-creator').setAttribute('aria-selected', String(!chat));
  updateControls();
}

function submitOnEnter(form) {
  return (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  };
}

// --- wiring --------------------------------------------------------------------------------------

$('#sign-in').addEventListener('click', signIn);
$('#composer').addEventListener('submit', sendMessage);
$('#message').addEventListener('keydown', submitOnEnter($('#composer')));
$('#stop').addEventListener('click', stop);
$('#new-conversation').addEventListener('click', newConversation);
$('#creator-start').addEventListener('click', startInterview);
$('#creator-composer').addEventListener('submit', answerQuestion);
$('#creator-answer').addEventListener('keydown', submitOnEnter($('#creator-composer')));
$('#creator-stop').addEventListener('click', stop);
$('#talk-to-coach').addEventListener('click', talkToNewCoach);
$('#tab-chat').addEventListener('click', () => showTab('chat'));
$('#tab-creator').addEventListener('click', () => showTab('creator'));
$('#error-close').addEventListener('click', clearError);
document.documentElement.dataset.ready = 'true';

// Kept for the console: `CoachStreamError` is what the client throws for a refused request.
window.coachDemo = { state, describeError, CoachStreamError };
