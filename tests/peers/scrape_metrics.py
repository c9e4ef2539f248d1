"""Scrapes ringway's /metrics and parses it with Prometheus's own Python
client, as a Prometheus server would: the 0.0.4 text format, or OpenMetrics
(strict parser, `# EOF` required) with `--openmetrics`, which also sends the
Accept header a Prometheus server sends.

    scrape_metrics.py URL [--openmetrics]

Prints one JSON object: the response's content type, each family's type, and
every sample as [name, labels, value].
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)


def main():
    url = sys.argv[1]
    om = "--openmetrics" in sys.argv[2:]
    req = urllib.request.Request(url)
    if om:
        req.add_header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )
    with urllib.request.urlopen(req, timeout=10) as resp:
        content_type = resp.headers.get("Content-Type")
        text = resp.read().decode("utf-8")
    parse = openmetrics_families if om else text_string_to_metric_families
    families = {}
    samples = []
    for fam in parse(text):
        if fam.name in families:
            raise SystemExit("family %s appears twice" % fam.name)
        families[fam.name] = fam.type
        for s in fam.samples:
            samples.append([s.name, s.labels, s.value])
    print(json.dumps({"content_type": content_type, "families": families, "samples": samples}))


if __name__ == "__main__":
    main()
