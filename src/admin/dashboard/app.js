/* gatehouse dashboard: polls the admin API of the origin it came from once a
 * second and draws everything with the DOM and SVG (no library, no request
 * anywhere else). Text from the gateway goes in with textContent only: paths
 * in recent errors come from clients. */
"use strict";
(function () {
  var POLL_MS = 1000, HISTORY = 121, QUANTILE_WINDOW_S = 10, TOKEN_KEY = "gatehouse.admin.token";
  var history = [];          /* {t: ms, stats} of the last ~2 minutes, oldest first */
  var routeNames = null, routesGen = -1, timer = null, stopped = false;

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function td(text, cls) { return el("td", cls, text); }
  function emptyRow(body, text) {   /* one muted row across the whole table */
    var tr = el("tr"), c = td(text, "muted");
    c.colSpan = body.parentNode.querySelectorAll("thead th").length;
    tr.appendChild(c);
    body.appendChild(tr);
  }
  function num(v) { return typeof v === "number" && isFinite(v); }

  /* ---------------------------------------------------------- formatting */
  function fmtRate(v) {
    if (!num(v)) return "–";
    if (v >= 1000) return (v / 1000).toFixed(1) + "k";
    if (v >= 100) return v.toFixed(0);
    return v.toFixed(1);
  }
  function fmtPct(v) { return num(v) ? (v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)) + " %" : "–"; }
  function fmtMs(v) {
    if (!num(v)) return "–";
    if (v >= 1000) return (v / 1000).toFixed(2) + " s";
    if (v >= 10) return v.toFixed(0) + " ms";
    return v.toFixed(1) + " ms";
  }
  function fmtDuration(s) {
    if (!num(s)) return "–";
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + Math.floor(s % 60) + "s";
    return Math.floor(s) + "s";
  }
  function fmtTime(iso) {
    if (!iso) return "–";
    var d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleTimeString([], { hour12: false });
  }
  function fmtDate(iso) { return iso ? String(iso).slice(0, 10) : "–"; }

  /* ------------------------------------------------------------ quantiles */
  /* Like Prometheus' histogram_quantile: find the bucket holding rank q*n
   * and interpolate linearly inside it; the +Inf bucket answers the highest
   * finite bound. counts are per bucket (not cumulative), one more than
   * bounds. null when there is nothing to rank. */
  function quantile(q, bounds, counts) {
    var total = 0, i;
    for (i = 0; i < counts.length; i++) total += counts[i];
    if (!(total > 0)) return null;
    var rank = q * total, cum = 0;
    for (i = 0; i < counts.length; i++) {
      if (cum + counts[i] >= rank && counts[i] > 0) {
        if (i >= bounds.length) return bounds[bounds.length - 1];
        var lo = i === 0 ? 0 : bounds[i - 1], hi = bounds[i];
        return lo + (hi - lo) * (rank - cum) / counts[i];
      }
      cum += counts[i];
    }
    return bounds[bounds.length - 1];
  }
  function bucketDelta(now, then) {
    if (!now || !Array.isArray(now)) return null;
    return now.map(function (c, i) { return Math.max(0, c - ((then && then[i]) || 0)); });
  }

  /* ------------------------------------------------------------- charts */
  var SVGNS = "http://www.w3.org/2000/svg";
  function spark(svg, values, fixedMax) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var vb = svg.viewBox.baseVal, w = vb.width, h = vb.height;
    var base = document.createElementNS(SVGNS, "line");
    base.setAttribute("x1", 0); base.setAttribute("x2", w);
    base.setAttribute("y1", h - 0.5); base.setAttribute("y2", h - 0.5);
    svg.appendChild(base);
    if (values.length < 2) return;
    var max = fixedMax || 0;
    values.forEach(function (v) { if (num(v) && v > max) max = v; });
    if (max <= 0) max = 1;
    /* the newest point at the right edge; the first half minute spans the
     * whole width, so a fresh page shows a line rather than a dot */
    var step = w / Math.max(29, Math.min(HISTORY - 2, values.length - 1)), x0 = w - step * (values.length - 1), pts = [];
    values.forEach(function (v, i) {
      var y = h - 1 - (num(v) ? v : 0) / max * (h - 3);
      pts.push((x0 + i * step).toFixed(1) + "," + y.toFixed(1));
    });
    var area = document.createElementNS(SVGNS, "polygon");
    area.setAttribute("points", x0.toFixed(1) + "," + h + " " + pts.join(" ") + " " + w + "," + h);
    svg.appendChild(area);
    var line = document.createElementNS(SVGNS, "polyline");
    line.setAttribute("points", pts.join(" "));
    svg.appendChild(line);
    var title = document.createElementNS(SVGNS, "title");
    title.textContent = "max " + fmtRate(max);
    svg.appendChild(title);
  }

  /* ------------------------------------------------------------- fetching */
  function token() { try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; } }
  function setToken(t) { try { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* private mode */ } }

  function Unauthorized() {}
  function get(path) {
    var h = { "Accept": "application/json" }, t = token();
    if (t) h.Authorization = "Bearer " + t;
    return fetch(path, { headers: h, cache: "no-store", credentials: "omit" }).then(function (r) {
      if (r.status === 401) throw new Unauthorized();
      if (!r.ok) return { missing: r.status };
      return r.json().catch(function () { return { missing: "bad JSON" }; });
    });
  }

  function showLogin(msg) {
    stopPolling();
    $("login").hidden = false;
    $("conn").className = "conn";
    $("conn").textContent = "waiting for the admin token";
    if (msg) $("login-msg").textContent = msg;
    $("login-token").focus();
  }

  function poll() {
    Promise.all(["/api/stats", "/api/status", "/api/upstreams", "/api/versions"].map(get)).then(function (r) {
      var gen = r[0] && r[0].config ? r[0].config.generation : r[1] && r[1].config ? r[1].config.generation : null;
      if (gen !== routesGen)   /* the route list only changes with the configuration */
        return get("/api/routes").then(function (rt) {
          routesGen = gen;
          routeNames = rt && Array.isArray(rt.routes) ? rt.routes.map(function (x) { return x.name; }) : null;
          return r;
        });
      return r;
    }).then(function (r) {
      if (r[1] && r[1].missing === 403)
        setConn(false, "the admin API answers loopback clients only: set admin.token or use an SSH tunnel", true);
      else
        setConn(true);
      render(r[0], r[1], r[2], r[3]);
    }, function (e) {
      if (e instanceof Unauthorized) {
        setToken(null);
        showLogin(token() === null && $("login").dataset.tried ? "That token was refused. Try again."
                                                               : "This gateway's admin API needs its token (admin.token). It is kept in this tab only.");
        return;
      }
      setConn(false, e && e.message);
    }).then(schedule);
  }
  function schedule() { if (!stopped) timer = setTimeout(poll, POLL_MS); }
  function stopPolling() { stopped = true; if (timer) clearTimeout(timer); timer = null; }
  function startPolling() { stopped = false; if (timer) clearTimeout(timer); poll(); }

  function setConn(ok, why, asIs) {
    var c = $("conn");
    c.className = ok ? "conn" : "conn bad";
    c.textContent = ok ? "live · updated " + new Date().toLocaleTimeString([], { hour12: false })
                       : asIs ? why : "gateway not answering" + (why ? " (" + why + ")" : "");
  }

  /* ------------------------------------------------------------ rendering */
  function available(sectionId, ok) {
    var s = $(sectionId), na = s.querySelector(".na"), body = s.querySelector(".scroll, dl, .charts, #ratelimits-body");
    if (na) na.hidden = ok;
    if (body) body.hidden = !ok;
    return ok;
  }
  function big(id, text, bad) {
    var b = $(id);
    b.querySelector(".value").textContent = text;
    b.classList.toggle("bad", !!bad);
  }
  function usable(x) { return x && !x.missing; }

  /* rates between the newest sample and the one `back` seconds earlier */
  function sampleBefore(seconds) {
    var last = history[history.length - 1], want = last.t - seconds * 1000;
    for (var i = history.length - 2; i >= 0; i--)
      if (history[i].t <= want) return history[i];
    return history.length > 1 ? history[0] : null;
  }
  function routeOf(stats, name) {
    if (!stats || !stats.routes) return null;
    for (var i = 0; i < stats.routes.length; i++) if (stats.routes[i].route === name) return stats.routes[i];
    return null;
  }
  function series(fn) {   /* per-second values of fn(prev, cur) over the history */
    var out = [];
    for (var i = 1; i < history.length; i++) {
      var dt = (history[i].t - history[i - 1].t) / 1000;
      out.push(dt > 0 ? fn(history[i - 1].stats, history[i].stats, dt) : null);
    }
    return out;
  }
  function d(a, b, f) { return Math.max(0, ((b && b[f]) || 0) - ((a && a[f]) || 0)); }

  function render(stats, status, ups, vers) {
    stats = usable(stats) ? stats : null;
    status = usable(status) ? status : null;
    var now = Date.now();
    if (stats) {
      var prev = history.length ? history[history.length - 1].stats : null;
      if (prev && (stats.uptime_seconds < prev.uptime_seconds ||
                   (stats.totals && prev.totals && stats.totals.requests < prev.totals.requests)))
        history = [];   /* the gateway restarted: counters began again */
      history.push({ t: now, stats: stats });
      if (history.length > HISTORY) history.shift();
    }
    renderHeader(stats, status);
    renderTraffic(stats);
    renderRoutes(stats);
    renderUpstreams(ups);
    renderConfig(stats, status);
    renderRateLimits(stats);
    renderVersions(vers);
    renderErrors(stats);
    document.body.dataset.ready = "1";
  }

  function totalsRate() {
    if (history.length < 2) return null;
    var cur = history[history.length - 1], prev = history[history.length - 2];
    var dt = (cur.t - prev.t) / 1000, a = prev.stats.totals, b = cur.stats.totals;
    if (!(dt > 0) || !a || !b) return null;
    var req = d(a, b, "requests");
    return { rps: req / dt, errPct: req ? 100 * d(a, b, "errors") / req : 0 };
  }
  function windowQuantiles(name) {   /* name undefined: all routes together */
    var cur = history[history.length - 1], old = sampleBefore(QUANTILE_WINDOW_S);
    if (!cur || !old || old === cur) return null;
    var bounds = cur.stats.latency_buckets_ms;
    if (!Array.isArray(bounds)) return null;
    var counts = null;
    (cur.stats.routes || []).forEach(function (r) {
      if (name !== undefined && r.route !== name) return;
      var o = routeOf(old.stats, r.route), delta = bucketDelta(r.latency, o && o.latency);
      if (!delta) return;
      if (!counts) counts = delta;
      else delta.forEach(function (c, i) { counts[i] += c; });
    });
    if (!counts) return null;
    return { p50: quantile(0.5, bounds, counts), p95: quantile(0.95, bounds, counts), p99: quantile(0.99, bounds, counts) };
  }

  function renderHeader(stats, status) {
    if (status && status.version) $("version").textContent = status.version;
    var tr = stats ? totalsRate() : null;
    big("big-rps", tr ? fmtRate(tr.rps) : "–");
    big("big-err", tr ? fmtPct(tr.errPct) : "–", tr && tr.errPct >= 1);
    var q = stats ? windowQuantiles() : null;
    big("big-p99", q && num(q.p99) ? fmtMs(q.p99) : "–");
    var open = stats && stats.connections ? stats.connections.open : status ? status.open_connections : null;
    big("big-conn", num(open) ? String(open) : "–");
    var cfg = stats && stats.config ? stats.config : status && status.config;
    var failed = !!(cfg && cfg.last_reload && cfg.last_reload.result === "error");
    big("big-gen", cfg && num(cfg.generation) ? String(cfg.generation) + (failed ? " · reload failed" : "") : "–", failed);
    var up = stats ? stats.uptime_seconds : status ? status.uptime_seconds : null;
    big("big-up", fmtDuration(up));
  }

  function peak(values, fmt) {
    var m = Math.max.apply(null, values.filter(num).concat([0]));
    return values.length > 1 ? "  (peak " + fmt(m) + ")" : "";
  }

  function renderTraffic(stats) {
    if (!available("traffic", !!stats)) return;
    var rps = series(function (a, b, dt) { return d(a.totals, b.totals, "requests") / dt; });
    var err = series(function (a, b) {
      var n = d(a.totals, b.totals, "requests");
      return n ? 100 * d(a.totals, b.totals, "errors") / n : 0;
    });
    spark($("chart-rps"), rps);
    spark($("chart-err"), err, 1);
    var tr = totalsRate();
    $("rps-now").textContent = tr ? fmtRate(tr.rps) + peak(rps, fmtRate) : "";
    $("err-now").textContent = tr ? fmtPct(tr.errPct) + peak(err, fmtPct) : "";
  }

  function renderRoutes(stats) {
    var names = [];
    if (stats && Array.isArray(stats.routes)) names = stats.routes.map(function (r) { return r.route; });
    else if (routeNames) names = routeNames.slice();
    if (!available("routes", names.length > 0 || !!stats)) return;
    var body = $("routes-body");
    body.textContent = "";
    var last = history.length ? history[history.length - 1] : null, prev = history.length > 1 ? history[history.length - 2] : null;
    names.forEach(function (name) {
      var cur = routeOf(stats, name), before = prev ? routeOf(prev.stats, name) : null;
      var dt = prev ? (last.t - prev.t) / 1000 : 0;
      var tr = el("tr");
      tr.dataset.route = name;
      tr.appendChild(td(name === "" ? "(no route matched)" : name, "mono"));
      var sc = el("td", "col-spark"), svg = document.createElementNS(SVGNS, "svg");
      svg.setAttribute("viewBox", "0 0 140 22");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("class", "spark");
      sc.appendChild(svg);
      tr.appendChild(sc);
      var req = cur && before && dt > 0 ? d(before, cur, "requests") : null;
      var errs = cur && before ? d(before, cur, "errors") : 0;
      tr.appendChild(td(req === null ? "–" : fmtRate(req / dt), "n"));
      var pct = req ? 100 * errs / req : req === 0 ? 0 : null;
      tr.appendChild(td(fmtPct(pct), "n" + (pct >= 1 ? " bad" : "")));
      tr.appendChild(td(cur ? cur.client_errors : "–", "n"));
      tr.appendChild(td(cur ? cur.rate_limited : "–", "n"));
      var q = cur ? windowQuantiles(name) : null;
      ["p50", "p95", "p99"].forEach(function (k) { tr.appendChild(td(q ? fmtMs(q[k]) : "–", "n")); });
      tr.appendChild(td(cur ? cur.requests : "–", "n c-requests"));
      body.appendChild(tr);
      if (cur)
        spark(svg, series(function (a, b, dt2) { return d(routeOf(a, name), routeOf(b, name), "requests") / dt2; }));
    });
  }

  function renderUpstreams(ups) {
    if (!available("upstreams", usable(ups) && Array.isArray(ups.upstreams))) return;
    var body = $("upstreams-body");
    body.textContent = "";
    if (!ups.upstreams.length) {
      emptyRow(body, "no upstreams configured");
    }
    ups.upstreams.forEach(function (u) {
      var targets = u.targets || [], down = targets.filter(function (t) { return !t.up; }).length;
      var g = el("tr", "group");
      g.dataset.upstream = u.name;
      g.appendChild(td(u.name + (u.balancer ? " (" + u.balancer + ")" : "")));
      g.appendChild(td(down ? down + " of " + targets.length + " down" : targets.length + " up", down ? "bad" : ""));
      var c = el("td");
      if (u.circuit === undefined || u.circuit === null) c.appendChild(el("span", "muted", "no breaker"));
      else c.appendChild(el("span", "pill" + (u.circuit === "open" ? " bad" : u.circuit === "half_open" ? " warn" : ""),
                            u.circuit.replace("_", "-")));
      g.appendChild(c);
      g.appendChild(td(u.pending > 0 ? u.pending + " queued" : "", "n warn"));
      g.appendChild(td(""));
      body.appendChild(g);
      targets.forEach(function (t) {
        var tr = el("tr", "sub");
        tr.appendChild(td(t.address + (num(t.weight) && t.weight !== 1 ? " ×" + t.weight : ""), "mono"));
        var state = !t.up ? (t.ejected ? "ejected" + (t.ejected_until ? " until " + fmtTime(t.ejected_until) : "")
                                       : t.healthy === false ? "unhealthy" : "down")
                          : t.healthy === false ? "up (check failing)" : "up";
        tr.appendChild(td(state, t.up ? (t.healthy === false ? "warn" : "") : "bad"));
        tr.appendChild(td(""));
        tr.appendChild(td(num(t.in_flight) ? t.in_flight : "–", "n"));
        tr.appendChild(td(num(t.failures) ? t.failures : "–", "n" + (t.failures > 0 ? " warn" : "")));
        body.appendChild(tr);
      });
    });
  }

  function dlRow(dl, k, v, cls) {
    dl.appendChild(el("dt", null, k));
    var dd = el("dd", cls);
    if (v instanceof Node) dd.appendChild(v); else dd.textContent = v;
    dl.appendChild(dd);
    return dd;
  }

  function renderConfig(stats, status) {
    var cfg = stats && stats.config ? stats.config : status && status.config;
    if (!available("config", !!cfg)) return;
    var dl = $("config-body");
    dl.textContent = "";
    dlRow(dl, "generation", num(cfg.generation) ? cfg.generation : "–");
    dlRow(dl, "source", cfg.source || "–").className = "mono";
    dlRow(dl, "loaded", cfg.loaded_at ? fmtTime(cfg.loaded_at) + " (" + cfg.loaded_at + ")" : "–");
    if (!("last_reload" in cfg)) { dlRow(dl, "last reload", "not available", "na"); return; }
    var lr = cfg.last_reload;
    if (!lr) { dlRow(dl, "last reload", "none since start"); return; }
    var ok = lr.result === "ok";
    var dd = dlRow(dl, "last reload", (ok ? "ok" : "FAILED, previous configuration kept") + (lr.at ? " at " + fmtTime(lr.at) : ""),
                   ok ? "" : "bad");
    dd.id = "last-reload";
    if (!ok && Array.isArray(lr.errors) && lr.errors.length) {
      var ul = el("ul", "mono");
      lr.errors.forEach(function (e) { ul.appendChild(el("li", null, e)); });
      dd.appendChild(ul);
    }
  }

  function renderRateLimits(stats) {
    if (!available("ratelimits", !!(stats && stats.totals && num(stats.totals.rate_limited)))) return;
    var box = $("ratelimits-body");
    box.textContent = "";
    var old = history.length > 1 ? sampleBefore(60) : null;
    var lastMin = old && old.stats.totals ? d(old.stats.totals, stats.totals, "rate_limited") : null;
    var total = el("div", "total", stats.totals.rate_limited + " total");
    if (lastMin !== null) total.appendChild(el("span", "muted", "  ·  " + lastMin + " in the last minute"));
    box.className = "rl";
    box.appendChild(total);
    var any = false;
    (stats.routes || []).forEach(function (r) {
      if (!r.rate_limited) return;
      any = true;
      box.appendChild(el("span", "mono", (r.route || "(no route)") + ": " + r.rate_limited));
    });
    if (!any) box.appendChild(el("span", "muted", "no route has limited a request"));
  }

  function renderVersions(vers) {
    if (!available("versions", usable(vers) && Array.isArray(vers.routes))) return;
    var body = $("versions-body");
    body.textContent = "";
    var n = 0;
    vers.routes.forEach(function (r) {
      (r.versions || []).forEach(function (v) {
        if (v.state !== "deprecated" && v.state !== "sunset") return;
        n++;
        var tr = el("tr");
        tr.appendChild(td(r.route, "mono"));
        tr.appendChild(td(v.name + (v.state === "sunset" ? " (sunset)" : ""), "mono"));
        tr.appendChild(td(fmtDate(v.sunset)));
        var days = v.days_to_sunset;
        tr.appendChild(td(num(days) ? days : "–", "n" + (num(days) && days <= 7 ? " bad" : num(days) && days <= 30 ? " warn" : "")));
        tr.appendChild(td(num(v.requests_24h) ? v.requests_24h : "–", "n"));
        var callers = (v.callers || []).filter(function (c) { return c.requests_24h > 0; });
        tr.appendChild(td(callers.length ? callers.slice(0, 5).map(function (c) { return c.consumer + " " + c.requests_24h; }).join(", ") +
                          (callers.length > 5 ? ", +" + (callers.length - 5) + " more" : "") : "none", callers.length ? "" : "muted"));
        body.appendChild(tr);
      });
    });
    if (!n) emptyRow(body, "no deprecated versions");
  }

  function renderErrors(stats) {
    if (!available("errors", !!(stats && Array.isArray(stats.recent_errors)))) return;
    var body = $("errors-body");
    body.textContent = "";
    if (!stats.recent_errors.length) {
      emptyRow(body, "no errors");
    }
    var shown = 10, all = stats.recent_errors.length;
    $("errors-count").textContent = all > shown ? "newest " + shown + " of the last " + all : "newest first";
    stats.recent_errors.slice(0, shown).forEach(function (e) {
      var tr = el("tr");
      tr.appendChild(td(fmtTime(e.time)));
      tr.appendChild(td(e.status, "n" + (e.status >= 500 ? " bad" : "")));
      tr.appendChild(td(e.code || "–", "mono"));
      tr.appendChild(td(e.route === "" ? "(none)" : e.route || "–", "mono"));
      tr.appendChild(td((e.method || "") + " " + (e.path || ""), "mono"));
      tr.appendChild(td(e.request_id || "–", "mono"));
      body.appendChild(tr);
    });
  }

  /* --------------------------------------------------------------- start */
  document.addEventListener("DOMContentLoaded", function () {
    $("login-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      setToken($("login-token").value);
      $("login-token").value = "";
      $("login").dataset.tried = "1";
      $("login").hidden = true;
      startPolling();
    });
    startPolling();
  });
  window.ghDashboard = { quantile: quantile };   /* for tests */
})();
