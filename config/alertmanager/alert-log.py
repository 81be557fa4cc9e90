"""The compose stack's webhook receiver: prints every notification
Alertmanager posts, one JSON line each (`docker compose logs alert-log`).
Stands in for the operations centre's paging or chat system."""
import http.server
import json
import sys


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            note = json.loads(body)
            for alert in note.get("alerts", []):
                print(json.dumps({"status": alert.get("status"), "labels": alert.get("labels"),
                                  "summary": alert.get("annotations", {}).get("summary")}), flush=True)
        except ValueError:
            print(body.decode(errors="replace"), file=sys.stderr, flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("", 8080), Receiver).serve_forever()
