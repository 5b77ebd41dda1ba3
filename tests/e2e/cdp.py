"""A headless Chromium driven over the DevTools protocol (CDP), for the
dashboard tests: one websocket to the browser, the page attached in flat
mode, every event kept so tests can read the network log."""
import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile

import websockets

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# Nothing in the background: the page under test is the only thing that may
# make requests (and those are checked).
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--metrics-recording-only", "--mute-audio",
         "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
         "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", "--window-size=1366,900"]


class Browser:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="gh-chromium-")
        self.proc = subprocess.Popen([CHROMIUM] + FLAGS + ["--user-data-dir=" + self.dir, "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.ws_url = None
        for line in self.proc.stderr:   # chromium says where it listens, then we stop reading
            m = re.search(rb"DevTools listening on (ws://\S+)", line)
            if m:
                self.ws_url = m.group(1).decode()
                break
        if not self.ws_url:
            self.close()
            raise RuntimeError("chromium did not start (%s)" % self.proc.returncode)
        # keep draining stderr so chromium never blocks on a full pipe
        self._drain = subprocess.Popen(["cat"], stdin=self.proc.stderr, stdout=subprocess.DEVNULL)
        self.ws = None
        self.next_id = 0
        self.pending = {}
        self.events = []
        self.session = None
        self.reader = None
        self.mobile, self.scale = False, 1

    async def start(self):
        self.ws = await websockets.connect(self.ws_url, max_size=None, ping_interval=None)
        self.reader = asyncio.ensure_future(self._read())
        target = await self.send("Target.createTarget", {"url": "about:blank"}, browser=True)
        att = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                              browser=True)
        self.session = att["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            await self.send(domain + ".enable")

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg:
                fut = self.pending.pop(msg["id"], None)
                if fut and not fut.done():
                    fut.set_result(msg)
            else:
                self.events.append(msg)

    async def send(self, method, params=None, browser=False, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if not browser:
            msg["sessionId"] = self.session
        fut = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        await self.ws.send(json.dumps(msg))
        res = await asyncio.wait_for(fut, timeout)
        if "error" in res:
            raise RuntimeError("%s: %s" % (method, res["error"]))
        return res.get("result", {})

    async def eval(self, expr):
        r = await self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError("%s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    async def wait(self, expr, timeout=20.0, what=None):
        """Poll the page until expr is truthy; return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            v = await self.eval(expr)
            if v:
                return v
            if loop.time() > deadline:
                raise AssertionError("timed out waiting for %s (%s)%s" % (what or expr, v, self.problems()))
            await asyncio.sleep(0.05)

    async def goto(self, url):
        await self.send("Page.navigate", {"url": url})
        await self.wait("document.readyState === 'complete' && location.href === %s" % json.dumps(url),
                        what="the page to load")

    async def viewport(self, width, height, mobile=False, scale=1):
        self.mobile, self.scale = mobile, scale
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile})

    async def screenshot(self, path, full_page=True):
        """A PNG of the viewport, or of the whole page (the viewport made as
        tall as the page for the shot)."""
        if full_page:
            m = await self.send("Page.getLayoutMetrics")
            vp = m["cssLayoutViewport"]
            height = max(vp["clientHeight"], int((m.get("cssContentSize") or m["contentSize"])["height"]))
            await self.viewport(vp["clientWidth"], height, self.mobile, self.scale)
        r = await self.send("Page.captureScreenshot", {"format": "png"})
        if full_page:
            await self.viewport(vp["clientWidth"], vp["clientHeight"], self.mobile, self.scale)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def problems(self):
        """The page's uncaught exceptions and console errors, as text."""
        out = []
        for e in self.events:
            if e.get("method") == "Runtime.exceptionThrown":
                d = e["params"]["exceptionDetails"]
                out.append("exception: %s %s" % (d.get("text"), d.get("exception", {}).get("description", "")))
            elif e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "warning"):
                out.append("console: %s" % [a.get("value", a.get("description")) for a in e["params"]["args"]])
            elif e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error":
                out.append("log: %s" % e["params"]["entry"]["text"])
        return ("\n" + "\n".join(out)) if out else ""

    def requests(self):
        """(url, headers) of every request the page sent."""
        return [(e["params"]["request"]["url"], e["params"]["request"].get("headers", {}))
                for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    async def stop(self):
        if self.reader:
            self.reader.cancel()
        if self.ws:
            await self.ws.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if getattr(self, "_drain", None):
            self._drain.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
