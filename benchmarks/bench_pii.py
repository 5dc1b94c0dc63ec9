"""Recall and precision of the PII engine on a synthetic labelled corpus.

The corpus (``tests/_pii_corpus.py``, the one the tests check) mixes PII of every
category -- emails, phone numbers in international formats, Luhn-valid cards, IBANs, US
SSNs, UK NINOs, Dutch BSNs, German tax ids, IPv4/IPv6 addresses, JWTs, API keys and
cued person names -- with look-alikes: order ids, UUIDs, SHA-256 digests, Unix and ISO
timestamps, Luhn-invalid digit runs, MAC addresses, versions, dates.

Printed, each as recall and precision with the counts:

- the detector (``kailash_nb.pii.PIIDetector``): spans with the right category;
- the logger (``EnterpriseLogger(pii_redaction=True)``): PII values gone from the JSON
  line, look-alikes still in it;
- the GDPR node (``GDPRComplianceNode``, action ``detect_pii``): the same per record;
- with ``--presidio``, Presidio's pattern recognizers on the same corpus (those that run
  without a spaCy model), for the categories they cover.

Run: ``python benchmarks/bench_pii.py [--count N] [--seed S] [--presidio]``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _pii_corpus import generate_corpus, score_redaction, score_spans

from kailash_nb.logging import EnterpriseLogger
from kailash_nb.pii import PIIDetector

_PRESIDIO = {
    "EmailRecognizer": "email",
    "PhoneRecognizer": "phone",
    "CreditCardRecognizer": "credit_card",
    "IbanRecognizer": "iban",
    "UsSsnRecognizer": "us_ssn",
    "UkNinoRecognizer": "uk_nino",
    "DeTaxIdRecognizer": "de_tax_id",
    "IpRecognizer": "ip_address",
}


def detector_score(corpus):
    detector = PIIDetector()
    return score_spans(
        corpus, lambda text: [(m.category, m.start, m.end) for m in detector.detect(text)]
    )


def logger_score(corpus):
    stream = io.StringIO()
    logger = EnterpriseLogger(level=logging.INFO, pii_redaction=True, stream=stream)

    def redact(text: str) -> str:
        stream.seek(0)
        stream.truncate()
        logger.info(text)
        return json.loads(stream.getvalue())["message"]

    return score_redaction(corpus, redact)


def gdpr_score(corpus):
    from kailash_nb.nodes.security import GDPRComplianceNode

    node = GDPRComplianceNode()
    records = [{"note": record.text} for record in corpus]
    found = node.execute(action="detect_pii", data=records)["findings"]
    by_record: dict[int, list] = {}
    for finding in found:
        by_record.setdefault(finding["record"], []).append(
            (finding["category"], finding["start"], finding["end"])
        )
    spans = iter([by_record.get(index, []) for index in range(len(corpus))])
    return score_spans(corpus, lambda _text: next(spans))


def presidio_score(corpus, threshold: float):
    from presidio_analyzer import predefined_recognizers

    recognizers = []
    for name, category in _PRESIDIO.items():
        recognizer = getattr(predefined_recognizers, name)()
        recognizers.append((recognizer, category))

    def detect(text: str):
        spans = []
        for recognizer, category in recognizers:
            for result in recognizer.analyze(text, recognizer.supported_entities, None):
                if result.score >= threshold:
                    spans.append((category, result.start, result.end))
        return spans

    covered = set(_PRESIDIO.values())
    subset = [r for r in corpus if all(category in covered for category, _ in r.pii)]
    return score_spans(subset, detect), len(subset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--presidio", action="store_true")
    args = parser.parse_args()
    corpus = generate_corpus(args.count, args.seed)
    labelled = sum(len(record.pii) for record in corpus)
    looks = sum(len(record.lookalikes) for record in corpus)
    print(f"corpus: {len(corpus)} records, {labelled} PII values, {looks} look-alikes")
    print(f"detector    {detector_score(corpus)}")
    print(f"logger      {logger_score(corpus)}")
    try:
        score = gdpr_score(corpus)
    except ImportError as exc:
        print(f"gdpr node   not run ({exc})")
    else:
        print(f"gdpr node   {score}")
    if args.presidio:
        for threshold in (0.0, 0.4):
            score, count = presidio_score(corpus, threshold)
            print(f"presidio (score >= {threshold}, {count} records it covers)  {score}")
            ours = detector_score(
                [r for r in corpus if all(c in _PRESIDIO.values() for c, _ in r.pii)]
            )
            print(f"  ours on the same records                     {ours}")


if __name__ == "__main__":
    main()
