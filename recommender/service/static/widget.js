/* recommender widget: fills <div data-recommender="related|more-like-this|popular"> containers with lists from
   the recommender service. Dependency-free, no build step. It never throws into the host page and logs nothing:
   an error, a timeout or an unknown article leaves the container empty (or shows popular, if asked to).

   <script src="https://reco.example/widget.js" data-read="ARTICLE-ID" defer></script>
   Script options: data-api (API base URL; default: where this file came from), data-timeout-ms (2500),
   data-link ("/articles/{id}"; default: each article's url), data-read (this page's article id: remembered as
   read), data-history-size (50), data-css="off" (no default stylesheet), data-dedupe="off" (allow one article
   in two lists of the page), data-experiments="off" (never take part in the service's online experiments).
   Container options: data-k (5), data-article-id (related), data-ids / data-text / data-negative-ids /
   data-history="N" (more-like-this: also the reader's N last read articles), data-section, data-max-age-hours,
   data-window-hours (popular), data-fallback="popular", data-label (the list's accessible name). */
(function () {
  "use strict";
  if (window.RecommenderWidget) return;
  var script = document.currentScript;
  var opts = (script && script.dataset) || {};
  var STORE = "recommender.read";
  var READER = "recommender.reader";
  var KINDS = ["related", "more-like-this", "popular"];
  var LABELS = {"related": "Related articles", "more-like-this": "More like this", "popular": "Popular articles"};
  var STORY_LABELS = {"same story, earlier": "Earlier in this story", "same story, later": "Later in this story",
                      "same story": "Same story"};

  function num(value, fallback, lo, hi) {
    var n = parseFloat(value);
    return isFinite(n) ? Math.min(Math.max(n, lo), hi) : fallback;
  }
  function words(value) {
    return (value || "").split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  }
  var scriptUrl = script && script.src ? new URL(script.src, location.href) : null;
  var api = (opts.api || (scriptUrl ? scriptUrl.origin : location.origin)).replace(/\/+$/, "");
  var timeoutMs = num(opts.timeoutMs, 2500, 50, 60000);
  var historySize = Math.round(num(opts.historySize, 50, 0, 200));

  // Reader-side history: ids of articles opened in this browser, newest first (localStorage; no cookies).
  function readIds() {
    try {
      var ids = JSON.parse(localStorage.getItem(STORE) || "[]");
      return Array.isArray(ids) ? ids.filter(function (id) { return typeof id === "string"; }) : [];
    } catch (e) { return []; }
  }
  function remember(id) {
    if (!id) return;
    try {
      var ids = [id].concat(readIds().filter(function (x) { return x !== id; })).slice(0, historySize);
      localStorage.setItem(STORE, JSON.stringify(ids));
    } catch (e) { /* storage disabled or full: no history, nothing else changes */ }
  }

  // A random reader id (localStorage; no cookie): it decides which arm of a running experiment this reader sees.
  function readerId() {
    if (opts.experiments === "off") return null;
    try {
      var id = localStorage.getItem(READER);
      if (!id || !/^[A-Za-z0-9_-]{8,64}$/.test(id)) {
        var bytes = new Uint8Array(16);
        crypto.getRandomValues(bytes);
        id = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
        localStorage.setItem(READER, id);
      }
      return id;
    } catch (e) { return null; }  // no storage: outside every experiment
  }

  function call(path, body) {
    var ctrl = typeof AbortController === "function" ? new AbortController() : null;
    var timer = setTimeout(function () { if (ctrl) ctrl.abort(); }, timeoutMs);
    var init = {credentials: "omit", signal: ctrl ? ctrl.signal : undefined};
    if (body) {
      init.method = "POST";
      init.headers = {"Content-Type": "application/json"};
      init.body = JSON.stringify(body);
    }
    return fetch(api + path, init).then(function (res) {
      if (!res.ok) return {status: res.status};
      return res.json().then(function (data) {
        return {status: res.status, items: data && Array.isArray(data.items) ? data.items : [],
                impression: data && typeof data.impression_id === "string" ? data.impression_id : null};
      });
    }).catch(function () { return {status: 0}; }).then(function (result) {
      clearTimeout(timer);
      return result;
    });
  }

  // One API request for a container; `pad` extra items make room for those filtered out on this side.
  function request(el, kind, pad, withHistory) {
    var d = el.dataset, read = readIds();
    var k = Math.round(num(d.k, 5, 1, 50));
    var query = new URLSearchParams({widget: kind});
    var reader = readerId();
    if (reader) query.set("reader", reader);
    if (d.section) query.set("section", d.section);
    if (kind === "more-like-this") {
      var ids = words(d.ids);
      if (withHistory) ids = ids.concat(read.slice(0, Math.round(num(d.history, 0, 0, 20))));
      var body = {ids: ids.filter(function (id, i) { return ids.indexOf(id) === i; }), exclude_ids: read,
                  k: Math.min(100, k + pad)};
      if (reader) body.reader = reader;
      if (d.text) body.text = d.text;
      if (d.negativeIds) body.negative_ids = words(d.negativeIds);
      if (d.section) body.section = d.section;
      if (d.maxAgeHours) body.max_age_hours = num(d.maxAgeHours, 1, 0.01, 1e6);
      return call("/v1/more-like-this?" + query, body);
    }
    query.set("k", String(Math.min(100, k + pad + read.length)));
    if (kind === "related") {
      if (!d.articleId) return Promise.resolve({status: 0});
      if (d.maxAgeHours) query.set("max_age_hours", d.maxAgeHours);
      return call("/v1/articles/" + encodeURIComponent(d.articleId) + "/related?" + query);
    }
    if (d.windowHours) query.set("window_hours", d.windowHours);
    // On an article page, the editors' blocks beside it and their guardrails hold in popular lists too.
    if (d.articleId) query.set("beside", d.articleId);
    return call("/v1/popular?" + query);
  }

  function load(el, pad) {
    var kind = el.dataset.recommender;
    if (KINDS.indexOf(kind) < 0) return Promise.resolve({kind: kind, items: []});
    var history = kind === "more-like-this" && num(el.dataset.history, 0, 0, 20) > 0;
    return request(el, kind, pad, history).then(function (res) {
      // A remembered article may be gone from the index: ask again with the page's own examples only.
      return res.status === 404 && history ? request(el, kind, pad, false) : res;
    }).then(function (res) {
      if (res.items && res.items.length) return {kind: kind, items: res.items, impression: res.impression};
      if (el.dataset.fallback !== "popular" || kind === "popular") return {kind: kind, items: []};
      return request(el, "popular", pad, false).then(function (fallback) {
        return {kind: "popular", items: fallback.items || [], fallback: true, impression: fallback.impression};
      });
    });
  }

  function href(item) {
    var target = opts.link ? opts.link.split("{id}").join(encodeURIComponent(item.article_id)) : item.url;
    try {
      var url = new URL(target, location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) { return null; }
  }

  function ago(iso) {
    var when = Date.parse(iso);
    if (!isFinite(when) || typeof Intl === "undefined" || !Intl.RelativeTimeFormat) return "";
    var seconds = (when - Date.now()) / 1000;
    var format = new Intl.RelativeTimeFormat(document.documentElement.lang || undefined, {numeric: "auto"});
    var units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600],
                 ["minute", 60]];
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(seconds) >= units[i][1]) return format.format(Math.round(seconds / units[i][1]), units[i][0]);
    }
    return format.format(0, "minute");
  }

  function node(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text) el.textContent = text;
    return el;
  }

  function render(el, result, shown) {
    var read = readIds(), k = Math.round(num(el.dataset.k, 5, 1, 50)), items = [];
    result.items.forEach(function (item) {
      var link = item && typeof item.article_id === "string" && href(item);
      if (!link || items.length >= k || read.indexOf(item.article_id) >= 0 || shown[item.article_id]) return;
      items.push([item, link]);
    });
    el.textContent = "";
    el.setAttribute("aria-busy", "false");
    if (!items.length) {
      el.setAttribute("data-recommender-state", "empty");
      return;
    }
    var list = node("ul", "rec-list");
    list.setAttribute("aria-label", el.dataset.label || LABELS[result.kind]);
    items.forEach(function (pair) {
      var item = pair[0], li = node("li", "rec-item"), a = node("a", "rec-link", item.title || item.article_id);
      if (opts.dedupe !== "off") shown[item.article_id] = true;
      a.href = pair[1];
      a.setAttribute("data-rec-id", item.article_id);
      a.setAttribute("data-rec-widget", result.kind);
      if (result.impression) a.setAttribute("data-rec-impression", result.impression);
      li.appendChild(a);
      var meta = node("span", "rec-meta");
      // An editors' choice says so, in the rule's public words ("Chosen by the editors").
      if (item.source) li.setAttribute("data-rec-source", item.source);
      if (item.label && typeof item.label === "string") meta.appendChild(node("span", "rec-label", item.label));
      // A piece of the article's own story: say so ("Earlier in this story" / "Later in this story").
      var story = STORY_LABELS[item.relation];
      if (story) {
        li.setAttribute("data-rec-relation", item.relation);
        meta.appendChild(node("span", "rec-story", story));
      }
      if (item.section) meta.appendChild(node("span", "rec-section", item.section));
      var relative = item.published_at ? ago(item.published_at) : "";
      if (relative) {
        var time = node("time", "rec-time", relative);
        time.setAttribute("datetime", item.published_at);
        time.title = new Date(item.published_at).toLocaleString(document.documentElement.lang || undefined);
        meta.appendChild(time);
      }
      if (meta.firstChild) li.appendChild(meta);
      list.appendChild(li);
    });
    el.appendChild(list);
    el.setAttribute("data-recommender-state", result.fallback ? "fallback" : "ready");
    try {
      el.dispatchEvent(new CustomEvent("recommender:render", {bubbles: true,
        detail: {kind: result.kind, ids: items.map(function (p) { return p[0].article_id; })}}));
    } catch (e) { /* a host listener threw: not ours to report */ }
  }

  // A followed recommendation: remember it as read and count the click (no token: a public, rate-limited route).
  function clicked(event) {
    var link = event.target && event.target.closest ? event.target.closest("a[data-rec-id]") : null;
    if (!link || !this.contains(link) || (event.type === "auxclick" && event.button !== 1)) return;
    var id = link.getAttribute("data-rec-id");
    remember(id);
    var event_ = {article_id: id, widget: link.getAttribute("data-rec-widget"),
                  source_id: opts.read || this.dataset.articleId || null};
    if (link.getAttribute("data-rec-impression")) event_.impression_id = link.getAttribute("data-rec-impression");
    var body = JSON.stringify(event_);
    var url = api + "/v1/events/click";
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url, body)) return;  // text/plain: no CORS preflight
      fetch(url, {method: "POST", body: body, keepalive: true, mode: "no-cors", credentials: "omit"})
        .catch(function () {});
    } catch (e) { /* the click still navigates */ }
  }

  function refresh(root) {
    try {
      var els = Array.prototype.slice.call((root || document).querySelectorAll("[data-recommender]"));
      var pad = 0, shown = {}, chain = Promise.resolve();
      els.forEach(function (el) {
        el.setAttribute("data-recommender-state", "loading");
        el.setAttribute("aria-busy", "true");
        if (!el.hasAttribute("data-rec-bound")) {
          el.setAttribute("data-rec-bound", "");
          el.addEventListener("click", clicked);
          el.addEventListener("auxclick", clicked);
        }
        // Requests go out together; lists are drawn in page order so earlier lists keep their articles.
        var pending = load(el, opts.dedupe === "off" ? 0 : pad);
        pad += Math.round(num(el.dataset.k, 5, 1, 50));
        chain = chain.then(function () { return pending; }).then(function (result) {
          render(el, result, shown);
        }).catch(function () {
          el.textContent = "";
          el.setAttribute("data-recommender-state", "empty");
        });
      });
      return chain;
    } catch (e) { return Promise.resolve(); }
  }

  try {
    if (opts.css !== "off" && scriptUrl && document.head) {
      var css = document.createElement("link");
      css.rel = "stylesheet";
      css.href = new URL("widget.css", scriptUrl).href;
      document.head.insertBefore(css, document.head.firstChild);  // first, so the site's own CSS wins
    }
    remember(opts.read);
  } catch (e) { /* cosmetic only */ }
  window.RecommenderWidget = {refresh: refresh, read: readIds};
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { refresh(); });
  } else {
    refresh();
  }
})();
