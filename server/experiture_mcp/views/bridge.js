"use strict";
// The view's side of MCP Apps (io.modelcontextprotocol/ui, revision 2026-01-26): JSON-RPC 2.0 over postMessage with
// the host window. Shared by every view; a view calls Experiture.start({tools, accepts, render}).
// Every string from the API reaches the page through textContent or setAttribute, never as HTML.
const Experiture = (() => {
  const PROTOCOL_VERSION = "2026-01-26";
  const host = window.parent !== window ? window.parent : null;
  const root = document.documentElement;
  const pending = new Map();
  let nextId = 1;
  let view = null;
  let hostCapabilities = {};
  let hostContext = {};
  let toolArguments = null;
  let shown = null; // the last result rendered, kept to render again when the locale or time zone changes
  let lastSize = "";
  let resizeObserver = null;

  function readJson(id) {
    const node = document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (_) { return null; }
  }
  const CONFIG = readJson("experiture-config") || {};

  // --- wire ---------------------------------------------------------------------------------------------------
  function send(message) {
    host.postMessage(Object.assign({ jsonrpc: "2.0" }, message), "*");
  }
  function request(method, params, timeoutMs) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(method + ": the host did not answer"));
      }, timeoutMs || 20000);
      pending.set(id, { resolve, reject, timer });
      send({ id, method, params: params || {} });
    });
  }
  function notify(method, params) {
    send({ method, params: params || {} });
  }
  function onMessage(event) {
    if (!host || event.source !== host) return; // only the host frame speaks to us
    const m = event.data;
    if (!m || typeof m !== "object" || m.jsonrpc !== "2.0") return;
    if (typeof m.method === "string") {
      if (m.id !== undefined && m.id !== null) answerRequest(m);
      else onNotification(m.method, m.params && typeof m.params === "object" ? m.params : {});
      return;
    }
    const waiting = pending.get(m.id);
    if (!waiting) return;
    pending.delete(m.id);
    clearTimeout(waiting.timer);
    if (m.error) waiting.reject(new Error(String(m.error.message || "error " + m.error.code)));
    else waiting.resolve(m.result);
  }
  function answerRequest(m) {
    if (m.method === "ui/resource-teardown") {
      teardown();
      send({ id: m.id, result: {} });
    } else if (m.method === "ping") {
      send({ id: m.id, result: {} });
    } else {
      send({ id: m.id, error: { code: -32601, message: "Method not found: " + m.method } });
    }
  }
  function onNotification(method, params) {
    switch (method) {
      case "ui/notifications/tool-input":
        toolArguments = params.arguments && typeof params.arguments === "object" ? params.arguments : {};
        if (!shown) status("Loading the answer…");
        break;
      case "ui/notifications/tool-result":
        showResult(params);
        break;
      case "ui/notifications/tool-cancelled":
        if (!shown) status("The tool call was cancelled" + (params.reason ? ": " + String(params.reason) : "."));
        break;
      case "ui/notifications/host-context-changed":
        applyContext(params);
        break;
      default:
        break; // tool-input-partial and anything newer: nothing to show
    }
  }

  // --- host context: theme, variables, locale -----------------------------------------------------------------
  function applyContext(ctx) {
    const before = locale() + "|" + timeZone();
    hostContext = Object.assign({}, hostContext, ctx);
    if (ctx.theme === "light" || ctx.theme === "dark") root.dataset.theme = ctx.theme;
    const variables = ctx.styles && ctx.styles.variables;
    if (variables && typeof variables === "object") {
      for (const [name, value] of Object.entries(variables)) {
        // Only custom properties, and no URL references: a host value must never make the view load anything.
        if (/^--[a-z0-9-]+$/.test(name) && typeof value === "string" && !/url\s*\(/i.test(value)) {
          root.style.setProperty(name, value);
        }
      }
    }
    if (shown && before !== locale() + "|" + timeZone()) render(shown);
  }
  function locale() {
    const wanted = typeof hostContext.locale === "string" ? hostContext.locale : "en-US";
    try { return Intl.getCanonicalLocales(wanted)[0] || "en-US"; } catch (_) { return "en-US"; }
  }
  function timeZone() {
    return typeof hostContext.timeZone === "string" ? hostContext.timeZone : "UTC";
  }

  // --- size ---------------------------------------------------------------------------------------------------
  function reportSize() {
    if (!host) return;
    const rect = document.body.getBoundingClientRect();
    const size = { width: Math.ceil(rect.width), height: Math.ceil(rect.height) };
    const key = size.width + "x" + size.height;
    if (key === lastSize) return;
    lastSize = key;
    notify("ui/notifications/size-changed", size);
  }
  function teardown() {
    if (resizeObserver) resizeObserver.disconnect();
    resizeObserver = null;
    for (const waiting of pending.values()) clearTimeout(waiting.timer);
    pending.clear();
  }

  // --- results ------------------------------------------------------------------------------------------------
  function textOf(result) {
    const blocks = result && Array.isArray(result.content) ? result.content : [];
    return blocks.filter((b) => b && b.type === "text" && typeof b.text === "string").map((b) => b.text).join("\n");
  }
  function usable(result) {
    const sc = result && result.structuredContent;
    return !!(sc && typeof sc === "object" && view.accepts(sc));
  }
  async function refetch() {
    // Some hosts strip structuredContent from tool-result (Claude Desktop): ask for the same read-only call again.
    if (!hostCapabilities.serverTools || !toolArguments) return null;
    const tool = hostContext.toolInfo && hostContext.toolInfo.tool && hostContext.toolInfo.tool.name;
    const name = view.tools.includes(tool) ? tool : view.tools[0];
    try {
      return await request("tools/call", { name, arguments: toolArguments });
    } catch (_) {
      return null;
    }
  }
  async function showResult(result) {
    if (!result || typeof result !== "object") return;
    if (!result.isError && !usable(result)) {
      status("Fetching the details…");
      const again = await refetch();
      if (again && (again.isError || usable(again))) result = again;
      else return showText(textOf(result), "");
    }
    if (result.isError) return showText(textOf(result), "err");
    render(result);
  }
  function render(result) {
    shown = result;
    const main = document.getElementById("app");
    main.replaceChildren();
    try {
      view.render(result, main);
      document.body.dataset.shown = "view";
    } catch (err) {
      main.replaceChildren();
      showText(textOf(result), "");
      if (typeof console !== "undefined") console.warn("experiture view: shown as text:", err && err.message);
    }
  }
  function showText(text, kind) {
    const main = document.getElementById("app");
    document.body.dataset.shown = kind === "err" ? "error" : "text";
    main.replaceChildren(
      kind === "err" ? h("p", { class: "danger", role: "alert" }, "The tool reported an error:") : null,
      h("pre", { class: "text" + (kind === "err" ? " danger" : "") }, text || "The host sent no text for this answer."),
    );
  }
  function status(text) {
    document.getElementById("app").replaceChildren(h("p", { class: "muted" }, text));
  }

  // --- DOM and formatting helpers for the views ----------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "style") node.style.cssText = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function n(value) {
    return new Intl.NumberFormat(locale()).format(value);
  }
  function pct(part, whole) {
    // As the text words it: two decimals at most, trailing zeros dropped.
    if (!whole) return "n/a";
    return (100 * part / whole).toFixed(2).replace(/\.?0+$/, "") + "%";
  }
  function share(part, whole) {
    return whole > 0 ? Math.max(0, Math.min(100, 100 * part / whole)) : 0;
  }
  function validZone(zone) {
    if (typeof zone !== "string" || !zone || zone.length > 64) return null;
    try { new Intl.DateTimeFormat("en-US", { timeZone: zone }); return zone; } catch (_) { return null; }
  }
  function clock(date, zone, withSeconds) {
    const parts = {};
    const format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hourCycle: "h23", timeZoneName: "short",
    });
    for (const p of format.formatToParts(date)) parts[p.type] = p.value;
    const seconds = withSeconds && parts.second !== "00" ? ":" + parts.second : "";
    return {
      day: parts.year + "-" + parts.month + "-" + parts.day,
      time: parts.hour + ":" + parts.minute + seconds,
      zone: parts.timeZoneName,
    };
  }
  function when(iso, zone) {
    // "2026-11-22 08:00:05 EST (America/New_York) · 13:00:05 UTC", or UTC alone when the zone adds nothing.
    const date = new Date(iso);
    if (typeof iso !== "string" || isNaN(date.getTime())) return "unknown time";
    const utc = clock(date, "UTC", true);
    const tz = validZone(zone);
    if (!tz || /^(utc|etc\/utc|z)$/i.test(tz)) {
      return utc.day + " " + utc.time + " UTC" + (zone && !tz ? " (unknown time zone " + String(zone).slice(0, 40) + ")" : "");
    }
    const local = clock(date, tz, true);
    const utcPart = (local.day !== utc.day ? utc.day + " " : "") + utc.time + " UTC";
    return local.day + " " + local.time + " " + local.zone + " (" + tz + ") · " + utcPart;
  }
  function span(ms) {
    // The text's own duration style: 47m17s, 25h00m, 3 days.
    const seconds = Math.floor(Math.abs(ms) / 1000);
    if (seconds < 90) return seconds + "s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 90) return minutes + "m" + String(seconds % 60).padStart(2, "0") + "s";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + "h" + String(minutes % 60).padStart(2, "0") + "m";
    return Math.round(seconds / 86400) + " days";
  }
  function warningsOf(result) {
    // The warnings the model reads: the text's closing "Warnings:" list (API text can never start a line).
    const lines = textOf(result).split("\n");
    const at = lines.lastIndexOf("Warnings:");
    return at < 0 ? [] : lines.slice(at + 1).filter((l) => l.startsWith("- ")).map((l) => l.slice(2));
  }

  // --- start --------------------------------------------------------------------------------------------------
  async function start(definition) {
    view = definition;
    window.addEventListener("message", onMessage);
    const embedded = readJson("experiture-embedded");
    if (embedded && embedded.result) {
      // A standalone page (experiture-mcp view): the answer is in the page, there is no host to talk to.
      toolArguments = embedded.arguments || {};
      hostContext = { locale: "en-US", timeZone: "UTC" };
      return usable(embedded.result) ? render(embedded.result) : showText(textOf(embedded.result), embedded.result.isError ? "err" : "");
    }
    if (!host) return status("This view is shown by an MCP host next to a tool's answer, or by `experiture-mcp view`.");
    try {
      const init = await request("ui/initialize", {
        protocolVersion: PROTOCOL_VERSION,
        appInfo: { name: "experiture-mcp " + view.name, version: "1" },
        appCapabilities: { availableDisplayModes: ["inline"] },
      });
      hostCapabilities = (init && init.hostCapabilities) || {};
      applyContext((init && init.hostContext) || {});
    } catch (err) {
      return status("The host did not start this view (" + err.message + ").");
    }
    notify("ui/notifications/initialized", {});
    // Sizes only after the handshake: until then the host has not agreed to listen.
    if ("ResizeObserver" in window) {
      resizeObserver = new ResizeObserver(reportSize);
      resizeObserver.observe(document.body);
    }
    reportSize();
  }

  return { start, h, n, pct, share, when, span, validZone, warningsOf, textOf, config: CONFIG };
})();
