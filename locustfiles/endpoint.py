"""One endpoint per cell, closed loop: each user sends its next request as soon
as the previous one completes (no think time), so `users` is the number of
requests in flight and throughput is what the server sustains at that
concurrency.

FastHttpUser (geventhttpclient) is used because on this machine the load
generator is about as fast as the server it loads; HttpUser (requests) costs
several times more CPU per request.

Used two ways:
- by the runner's load driver (asyncbench.execute.loaddriver), which runs locust as a
  library and sets `path` per cell;
- directly with the locust CLI, for a manual or distributed run against an
  existing deployment:
      BENCH_PATH=/async/fanout/ locust -f locustfiles/endpoint.py --headless \
          -H http://127.0.0.1:8000 -u 32 -r 32 -t 30s --processes 2
  A scenario's own endpoint that is not a plain GET takes BENCH_METHOD,
  BENCH_HEADERS (a JSON object), BENCH_BODY and BENCH_STATUS (the expected
  status; default any 2xx), e.g. BENCH_METHOD=POST BENCH_PATH=/api/echo/
  BENCH_HEADERS='{"Content-Type": "application/json"}' BENCH_BODY='{"n": 1}'.
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, task

try:
    from locustfiles.causes import response_failure
    from locustfiles.request import RequestSpec
except ImportError:  # `locust -f locustfiles/endpoint.py`: only this folder is on sys.path
    from causes import response_failure  # type: ignore[import-not-found,no-redef]
    from request import RequestSpec  # type: ignore[import-not-found,no-redef]


class EndpointUser(FastHttpUser):
    wait_time = constant(0)
    path = os.environ.get("BENCH_PATH", "/sync/noio/")
    # method, headers, body and the expected status (a plain GET by default)
    request = RequestSpec.from_env()
    # Slow cells (a saturated sync worker) must show up as latency, not as
    # client-side timeouts, up to a point.
    network_timeout = 60.0
    connection_timeout = 10.0

    @task
    def hit(self) -> None:
        # A non-2xx answer (or, for an endpoint that names one, another status
        # than the expected) is a failure named by its status and the `error`
        # its JSON body gives ("HTTP 503: database unreachable"), which the
        # driver counts by kind; a connection error keeps locust's own name.
        spec = self.request
        with self.client.request(
            spec.method,
            self.path,
            name=self.path,
            data=spec.body or None,  # type: ignore[arg-type]  # bytes go out as they are (geventhttpclient)
            headers=spec.header_dict() or None,
            catch_response=True,
            # one request is what a cell measures: a redirect is an answer (with its status)
            allow_redirects=False,
        ) as response:
            status = response.status_code
            if status and not spec.accepts(status):
                response.failure(response_failure(status, response.content, spec.status))
