"""A plain HTTP file server for the cache tests: GET, HEAD, PUT and DELETE on files under a
directory, nothing else (no WebDAV). Started by the tests on 127.0.0.1 with an ephemeral
port, which it prints on its first line.

usage: put_server.py ROOT [--refuse-put]
"""

import http.server
import os
import sys
import urllib.parse

ROOT = os.path.abspath(sys.argv[1])
REFUSE_PUT = "--refuse-put" in sys.argv


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def _path(self):
        rel = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/")
        full = os.path.abspath(os.path.join(ROOT, rel))
        if not full.startswith(ROOT + os.sep):
            return None
        return full

    def _empty(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_file(self, body):
        path = self._path()
        if path is None or not os.path.isfile(path):
            self._empty(404)
            return
        size = os.path.getsize(path)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Last-Modified", self.date_time_string(int(os.path.getmtime(path))))
        self.end_headers()
        if body:
            with open(path, "rb") as f:
                self.wfile.write(f.read())

    def do_GET(self):
        self._send_file(True)

    def do_HEAD(self):
        self._send_file(False)

    def do_PUT(self):
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length)
        path = self._path()
        if REFUSE_PUT or path is None:
            self._empty(403)
            return
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".part"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        self._empty(201)

    def do_DELETE(self):
        path = self._path()
        if path is not None and os.path.isfile(path):
            os.remove(path)
            self._empty(204)
        else:
            self._empty(404)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
