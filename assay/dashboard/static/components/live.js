// The engine's server-sent event stream, shared by all views. Under auth the browser cannot attach
// an Authorization header to an EventSource, so a short-lived ticket is fetched first
// (POST /events/ticket); when the engine has no ticket endpoint (404) the stream is opened as is.

import { api, API_BASE, getToken } from "./api.js";
import { SseEvent } from "./protocol.js";

// every event the engine sends (assay/protocol.py SseEvent, via the generated protocol.js)
export const EVENT_TYPES = Object.values(SseEvent);

const subscribers = new Set();
const statusListeners = new Set();
let source = null;
let namespace = null;
let status = "off";
let retryTimer = null;
let retryDelay = 1000;
let generation = 0;

export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

export function onStatus(fn) {
  statusListeners.add(fn);
  fn(status);
  return () => statusListeners.delete(fn);
}

export function isLive() {
  return status === "live";
}

function setStatus(s) {
  if (s === status) return;
  status = s;
  for (const fn of statusListeners) fn(s);
}

function dispatch(type, raw) {
  let data;
  try {
    data = JSON.parse(raw);
  } catch {
    return;
  }
  if (!data || typeof data !== "object") return;
  data.event_type = data.event_type || type;
  if (data.namespace && namespace && data.namespace !== namespace) return;
  for (const fn of subscribers) {
    try {
      fn(data);
    } catch (e) {
      console.warn("live subscriber failed", e);
    }
  }
}

async function ticketQuery() {
  if (!getToken()) return {};
  try {
    const res = await api("/events/ticket", { method: "POST", body: { namespace }, quiet: true });
    return res && res.ticket ? { ticket: res.ticket } : {};
  } catch (e) {
    if (e.status === 404 || e.status === 405) return {};
    throw e;
  }
}

function scheduleRetry(gen) {
  clearTimeout(retryTimer);
  retryTimer = setTimeout(() => {
    if (gen === generation) open(gen);
  }, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 15000);
}

async function open(gen) {
  if (source) {
    source.close();
    source = null;
  }
  setStatus("connecting");
  let extra;
  try {
    extra = await ticketQuery();
  } catch {
    if (gen === generation) {
      setStatus("offline");
      scheduleRetry(gen);
    }
    return;
  }
  if (gen !== generation) return;
  const url = new URL(`${API_BASE}/events/stream`, location.origin);
  url.searchParams.set("namespace", namespace);
  for (const [k, v] of Object.entries(extra)) url.searchParams.set(k, v);
  const es = new EventSource(url);
  source = es;
  es.onopen = () => {
    retryDelay = 1000;
    setStatus("live");
  };
  es.onmessage = (ev) => dispatch("message", ev.data);
  for (const type of EVENT_TYPES) es.addEventListener(type, (ev) => dispatch(type, ev.data));
  es.onerror = () => {
    if (gen !== generation) return;
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. 401/503): reconnect ourselves, with a fresh ticket.
      setStatus("offline");
      scheduleRetry(gen);
    } else {
      setStatus("connecting");
    }
  };
}

export function connect(ns) {
  if (ns === namespace && source && source.readyState !== EventSource.CLOSED) return;
  namespace = ns;
  generation += 1;
  retryDelay = 1000;
  clearTimeout(retryTimer);
  open(generation);
}

export function reconnect() {
  if (namespace === null) return;
  generation += 1;
  retryDelay = 1000;
  clearTimeout(retryTimer);
  open(generation);
}

export function disconnect() {
  generation += 1;
  clearTimeout(retryTimer);
  if (source) source.close();
  source = null;
  setStatus("off");
}
