#!/usr/bin/env python3
"""Accept latency under load: SESSIONS threads submit N messages (one SMTP
session per message, like smtp-source), each with From/To headers so PEC
rules accept it, and time connect -> 250 after DATA. Prints one line:
n=.. sessions=.. accept_msgs_per_s=.. lat_p50_ms=.. lat_p99_ms=.. lat_max_ms=.. errors=.."""
import smtplib
import sys
import threading
import time


def main(port, n, sessions, size):
    body = "From: <sender@example.it>\r\nTo: <dest@example.it>\r\nSubject: latency\r\n\r\n" + ("x" * 76 + "\r\n") * max(1, size // 78)
    lats, errors, lock = [], [0], threading.Lock()
    counter = iter(range(n))

    def worker():
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            t0 = time.perf_counter()
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                    s.sendmail("sender@example.it", ["dest@example.it"], body)
                with lock:
                    lats.append(time.perf_counter() - t0)
            except Exception:  # counted, the run goes on
                with lock:
                    errors[0] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lats.sort()
    pick = lambda q: 1000 * lats[min(len(lats) - 1, int(q * len(lats)))] if lats else float("nan")
    print("n=%d sessions=%d accept_msgs_per_s=%.1f lat_p50_ms=%.1f lat_p99_ms=%.1f lat_max_ms=%.1f errors=%d" % (
        n, sessions, len(lats) / elapsed, pick(0.5), pick(0.99), 1000 * lats[-1] if lats else float("nan"), errors[0]))
    return 0 if errors[0] == 0 else 1


if __name__ == "__main__":
    a = sys.argv[1:]
    sys.exit(main(int(a[0]), int(a[1]) if len(a) > 1 else 2000, int(a[2]) if len(a) > 2 else 20, int(a[3]) if len(a) > 3 else 4096))
