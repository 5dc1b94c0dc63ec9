"""The ``"http"`` participant kind: a service that takes part in transactions over HTTP.

Each operation is one ``POST {endpoint}/{operation}`` (``prepare``, ``commit``,
``abort``, ``execute``, ``compensate``) whose JSON body is ``StepCall.payload()``::

    spec = ParticipantSpec("payments", "http", options={"endpoint": "https://pay.example/tx"})
    participant = resolve(spec)          # after importing kailash_nb.nodes.transaction
    participant.prepare(call)            # POST https://pay.example/tx/prepare

What the answers mean:

- ``prepare``: a 2xx whose body is the JSON object ``{"vote": "prepared", ...}`` is
  ``Vote.PREPARED``; any other 2xx answer (another vote, no vote, a body that is not
  JSON) is ``Vote.ABORT`` (checklist DTM-07).
- ``commit``, ``abort``, ``compensate``: any 2xx acknowledges; the body is not read.
- ``execute``: a 2xx whose body is a JSON object; its ``"result"`` member (``None``
  when absent) is the step's result. Any other 2xx body raises
  ``PermanentParticipantError``: the step may have taken effect, so the coordinator
  compensates it rather than asking again.
- A connection error or timeout that outlasts the retries, a 5xx, a 408 or a 429
  raises ``ParticipantError`` (transient: the coordinator tries again later).
- Any other 4xx (a 409 for an ``execute`` of a step already compensated, DTM-14), a
  3xx (redirects are not followed), a 501 or 505 raises ``PermanentParticipantError``.

The requests go through the HTTP nodes' machinery (``kailash_nb.nodes._http``):
per-attempt timeouts, retries with exponential backoff (and ``Retry-After``), pooled
connections, and credentials in the endpoint kept out of every message. Destinations
are checked as for the HTTP nodes (``kailash_nb.nodes._ssrf``): only public addresses
unless the spec's ``allow_private_network`` is true (loopback, RFC 1918, CGNAT,
unique-local) or the deployment lists the network in ``KAILASH_NB_HTTP_ALLOW_NETWORKS``.
A refused destination raises ``PermanentParticipantError`` before anything is sent.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar
from urllib.parse import urlsplit

from kailash_nb.nodes._http import _shown_url
from kailash_nb.nodes._retry import PERMANENT_5XX
from kailash_nb.nodes._ssrf import ALLOW_NETWORKS_ENV, DestinationNotAllowedError
from kailash_nb.nodes.api import HTTPRequestNode
from kailash_nb.nodes.transaction.errors import ParticipantConfigurationError
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeExecutionError, close_matches
from kailash_nb.transactions.participants import (
    Participant,
    ParticipantError,
    ParticipantSpec,
    PermanentParticipantError,
    StepCall,
    Vote,
)

__all__ = ["HttpParticipant"]

logger = logging.getLogger(__name__)

#: Option name -> default (``endpoint`` has none: it is required).
OPTION_DEFAULTS: dict[str, Any] = {
    "timeout": 10.0,
    "retries": 2,
    "backoff_factor": 0.5,
    "allow_private_network": False,
}
_OPTIONS = ("endpoint", *OPTION_DEFAULTS)
# Answers another attempt may change: the server is overloaded, busy or timed out.
_TRANSIENT_STATUSES = frozenset({408, 429})
_SHOWN_ERROR_CHARACTERS = 200


class _ParticipantRequest(HTTPRequestNode):
    """The HTTP node the participant sends through; its messages name the participant.
    Not registered as a node type."""

    _type_name: ClassVar[str | None] = "HttpParticipant"

    def _subject(self) -> str:
        return f"participant {self.id!r} (http)"


class HttpParticipant(Participant):
    """A participant reached over HTTP; see the module docstring for the protocol.

    Options (``spec.options``): ``endpoint`` (required; the base ``http(s)://`` URL the
    operation names are appended to), ``timeout`` (seconds per connect, read or write;
    default 10), ``retries`` (extra attempts after a connection error, timeout, 5xx or
    429; default 2; safe because the participant deduplicates by step id),
    ``backoff_factor`` (retry ``n`` waits ``backoff_factor * 2**n`` seconds; default
    0.5) and ``allow_private_network`` (default False).

    Raises:
        ParticipantConfigurationError: an unknown option, a missing or malformed
            endpoint, or a value of the wrong type or range (when built).
    """

    def __init__(self, spec: ParticipantSpec) -> None:
        super().__init__(spec)
        options = _checked_options(spec)
        self.endpoint: str = options["endpoint"]
        #: Seconds each attempt may take to connect, send or read.
        self.timeout: float = float(options["timeout"])
        #: Extra attempts after a transient failure.
        self.retries: int = options["retries"]
        self._allow_private_network: bool = options["allow_private_network"]
        self._request = _ParticipantRequest(
            _node_id=spec.id,
            method="POST",
            headers={"content-type": "application/json", "accept": "application/json"},
            timeout=options["timeout"],
            retries=options["retries"],
            backoff_factor=options["backoff_factor"],
            follow_redirects=False,
            response_format="text",
            allow_private_network=options["allow_private_network"],
        )

    def prepare(self, call: StepCall) -> Vote:
        """``Vote.PREPARED`` when the answer is ``{"vote": "prepared"}``, else ``Vote.ABORT``."""
        text = self._post("prepare", call)
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("vote") == Vote.PREPARED.value:
            return Vote.PREPARED
        if isinstance(answer, dict) and answer.get("vote") == Vote.ABORT.value:
            return Vote.ABORT
        logger.warning(
            "participant %r (http) answered prepare of step %r without a vote (%s); "
            "counted as ABORT",
            self.id,
            call.step_id,
            _excerpt(text) or "an empty body",
        )
        return Vote.ABORT

    def commit(self, call: StepCall) -> None:
        """Ask the participant to commit the prepared step."""
        self._post("commit", call)

    def abort(self, call: StepCall) -> None:
        """Ask the participant to drop the step (prepared or not)."""
        self._post("abort", call)

    def execute(self, call: StepCall) -> Any:
        """Run the saga step; its result is the ``"result"`` member of the answer.

        Raises:
            PermanentParticipantError: also when a 2xx answer is not a JSON object.
        """
        text = self._post("execute", call)
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise PermanentParticipantError(
                f"participant {self.id!r} (http): POST {self._shown('execute')} answered "
                f"with a body that is not a JSON object ({_excerpt(text) or 'empty'}); the "
                "step may have run, so it is not asked again"
            )
        return answer.get("result")

    def compensate(self, call: StepCall) -> None:
        """Ask the participant to undo the step (a recorded no-op if it never ran)."""
        self._post("compensate", call)

    def close(self) -> None:
        """Close the pooled connections; a later call opens new ones."""
        self._request.close()

    def _refusal_advice(self, refusal: DestinationNotAllowedError) -> str:
        advice = f"list its network in {ALLOW_NETWORKS_ENV} if the deployment must reach it"
        if self._allow_private_network or not refusal.private_network:
            return advice
        return (
            "set allow_private_network=True in the participant's options to reach internal "
            f"services, or {advice}"
        )

    def _shown(self, operation: str) -> str:
        return _shown_url(f"{self.endpoint}/{operation}")

    def _post(self, operation: str, call: StepCall) -> str:
        """POST the call to ``operation``; the 2xx answer's body, else raise."""
        try:
            body = json.dumps(call.payload(), allow_nan=False)
        except (TypeError, ValueError) as error:
            raise PermanentParticipantError(
                f"participant {self.id!r} (http): the {operation} call of step "
                f"{call.step_id!r} cannot be sent as JSON ({error}); keep the transaction "
                "context to JSON values"
            ) from None
        url = f"{self.endpoint}/{operation}"
        try:
            outputs = self._request.execute(url=url, data=body)
        except DestinationNotAllowedError as refusal:
            raise PermanentParticipantError(
                f"participant {self.id!r} (http): POST {_shown_url(url)} refused, nothing was "
                f"sent: host {refusal.host!r} ({refusal.address}) is {refusal.reason}; "
                f"{self._refusal_advice(refusal)}"
            ) from None
        except NodeConfigurationError as error:
            raise ParticipantConfigurationError(f"participant {self.id!r}: {error}") from None
        except NodeExecutionError as error:
            raise ParticipantError(str(error)) from error
        status, text = outputs["status_code"], outputs["content"]
        if 200 <= status < 300:
            return text
        said = f"POST {_shown_url(url)} answered {status}"
        detail = _excerpt(text)
        if detail:
            said += f" ({detail})"
        if status in _TRANSIENT_STATUSES or (status >= 500 and status not in PERMANENT_5XX):
            raise ParticipantError(
                f"participant {self.id!r} (http): {said} after {outputs['attempts']} attempt(s)"
            )
        raise PermanentParticipantError(f"participant {self.id!r} (http): {said}")


def _excerpt(text: str) -> str:
    """What an answer says, short: its ``"error"`` member if it has one, else its start."""
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        text = answer["error"]
    text = " ".join(text.split())
    if len(text) > _SHOWN_ERROR_CHARACTERS:
        text = text[:_SHOWN_ERROR_CHARACTERS] + "..."
    return text


def _checked_options(spec: ParticipantSpec) -> dict[str, Any]:
    """The spec's options with defaults filled in; raises on anything unusable."""
    options = {**OPTION_DEFAULTS, **spec.options}
    problems = [
        f"unknown option {name!r}{close_matches(str(name), _OPTIONS)}"
        for name in spec.options
        if name not in _OPTIONS
    ]
    endpoint = options.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        problems.append("'endpoint' (the base URL, e.g. 'https://payments.example/tx') is required")
    else:
        try:
            parts = urlsplit(endpoint)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:
            valid = False
        if not valid:
            problems.append(f"endpoint {_shown_url(endpoint)!r} is not an http(s) URL with a host")
        elif parts.query or parts.fragment:
            problems.append(
                f"endpoint {_shown_url(endpoint)!r} must not have a query or fragment: the "
                "operation name is appended to its path"
            )
        options["endpoint"] = endpoint.rstrip("/")
    timeout = options["timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        problems.append(f"timeout must be a positive number of seconds, got {timeout!r}")
    retries = options["retries"]
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        problems.append(f"retries must be a whole number, 0 or more, got {retries!r}")
    backoff = options["backoff_factor"]
    if isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or not backoff >= 0:
        problems.append(f"backoff_factor must be 0 or more seconds, got {backoff!r}")
    if not isinstance(options["allow_private_network"], bool):
        problems.append(
            f"allow_private_network must be true or false, got {options['allow_private_network']!r}"
        )
    if problems:
        raise ParticipantConfigurationError(
            f"participant {spec.id!r} (http): {'; '.join(problems)}"
        )
    return options
