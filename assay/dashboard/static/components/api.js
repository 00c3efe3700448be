// HTTP access to the engine: bearer token from sessionStorage, one error type, reachability and
// sign-in hooks (a 401 anywhere opens the sign-in form; a network failure shows the banner).

export const API_BASE = "/api/v1/engine/workflow";
const TOKEN_KEY = "assay.token";

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

const hooks = { auth: null, reach: null };
export function onAuthRequired(fn) {
  hooks.auth = fn;
}
export function onReachability(fn) {
  hooks.reach = fn;
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token lives for this page only */
  }
}

export function apiUrl(path, query) {
  const url = new URL(API_BASE + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  return url;
}

export async function api(path, { method = "GET", query, body, signal, quiet = false } = {}) {
  const headers = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, signal, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(apiUrl(path, query), init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    hooks.reach?.(false);
    throw new ApiError("The engine is unreachable", 0);
  }
  hooks.reach?.(true);
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (res.status === 401) {
    const msg = (data && data.error) || "Authentication required";
    if (!quiet) hooks.auth?.(msg);
    throw new ApiError(msg, 401, data);
  }
  if (!res.ok) {
    const msg = (data && typeof data === "object" && data.error) || (typeof data === "string" && data) || `HTTP ${res.status}`;
    throw new ApiError(msg, res.status, data);
  }
  return data;
}

export const enc = encodeURIComponent;

// Convenience wrappers used by several views.
export const wf = {
  get: (id) => api(`/workflows/${enc(id)}`),
  signal: (id, name, payload) => api(`/workflows/${enc(id)}/signal/${enc(name)}`, { method: "POST", body: payload === undefined ? {} : { payload } }),
  cancel: (id, reason) => api(`/workflows/${enc(id)}/cancel`, { method: "POST", body: reason ? { reason } : {} }),
  terminate: (id, reason) => api(`/workflows/${enc(id)}/terminate`, { method: "POST", body: reason ? { reason } : {} }),
  continueAsNew: (id, body) => api(`/workflows/${enc(id)}/continue-as-new`, { method: "POST", body }),
  reset: (id, body) => api(`/workflows/${enc(id)}/reset`, { method: "POST", body }),
};
