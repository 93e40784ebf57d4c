"""The static reference resource: every enum value, scope and error code with its meaning and what to do."""

from __future__ import annotations

from experiture_mcp.render import EXECUTION_STATES, REACH_STATUSES, SCOPES, TIMEZONE_SOURCES

__all__ = ["reference_markdown"]

ERROR_CODES = (
    (
        "JOURNEY_API.PUBLIC.CAMPAIGNS.NOT_FOUND",
        404,
        "Campaign not found (or not visible to this token).",
        "Check the id; do not retry the same id.",
    ),
    (
        "JOURNEY_API.PUBLIC.CAMPAIGNS.TYPE_UNSUPPORTED",
        409,
        "The campaign exists but is not a broadcast campaign.",
        "Do not retry; do not report it as missing.",
    ),
    (
        "SUMMARY_TYPE_UNSUPPORTED",
        409,
        "Same as TYPE_UNSUPPORTED, as the summary endpoint spells it.",
        "Do not retry; do not report it as missing.",
    ),
    (
        "JOURNEY_API.PUBLIC.CAMPAIGNS.STATUS_INCONSISTENT",
        500,
        "Status cannot be assembled: execution metadata is inconsistent.",
        "get_summary and get_metrics may still answer; report to Experiture support if it persists.",
    ),
    (
        "JOURNEY_API.AUTH.INSUFFICIENT_SCOPE",
        403,
        "The token lacks the scope the endpoint needs.",
        "Grant the scope to the token; retrying will not help.",
    ),
    ("(HTTP 401)", 401, "The token is missing, invalid or expired.", "Set a new EXPERITURE_API_TOKEN."),
    ("(HTTP 429)", 429, "Rate limited.", "Wait for Retry-After, then retry."),
    (
        "(any other 5xx)",
        "5xx",
        "Experiture server error, usually temporary (502, 503 and 504 are already retried within the call).",
        "Retry in a minute; if it persists, Experiture may be having an outage.",
    ),
)


def _table(header: str, rows: list[tuple[str, ...]]) -> str:
    cols = header.count("|") - 1
    lines = [header, "|" + "---|" * cols]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def reference_markdown() -> str:
    """The markdown served at experiture://reference/status-values."""
    return (
        "\n\n".join(
            [
                "# Experiture public API v1: status values, scopes and error codes",
                "## Tools and scopes",
                _table(
                    "| Tool | Endpoint | Scope | Use for |",
                    [
                        (
                            "get_status",
                            "GET /campaigns/:id/status",
                            SCOPES["get_status"],
                            "operational monitoring: state, schedule, latest run and its counts",
                        ),
                        (
                            "get_metrics",
                            "GET /campaigns/:id/metrics",
                            SCOPES["get_metrics"],
                            "BI and reporting: latest run's counts only (zeros when never run)",
                        ),
                        (
                            "get_summary",
                            "GET /campaigns/:id/summary",
                            SCOPES["get_summary"],
                            "setup: schedule, audience and reach, template, preflight",
                        ),
                        (
                            "get_overview",
                            "status (+ metrics) of up to 50 campaigns",
                            "campaigns:read (+ analytics:read)",
                            "which campaigns need attention: one row each, attention first",
                        ),
                    ],
                ),
                "## execution.state (get_status)",
                _table("| State | Meaning |", [(f"`{k}`", v) for k, v in EXECUTION_STATES.items()]),
                "## audience.reach.status (get_summary)",
                _table("| Status | Meaning |", [(f"`{k}`", v) for k, v in REACH_STATUSES.items()])
                + "\n\n`isStale: true` means the audience definition changed after the last evaluation, so counts may "
                "not reflect current segment membership.",
                "## schedule.kind (get_summary)",
                "- `digital_send` (email, SMS, push): `mode` `at`, `sendAt` timestamp, `timezone`, `scheduled`.\n"
                "- `direct_mail_batch`: `mode` `batch_on_date`, `batchDate` (a calendar date), `timezone`, "
                "`timezoneSource`, `scheduled`.\n\n"
                + _table("| timezoneSource | Meaning |", [(f"`{k}`", v) for k, v in TIMEZONE_SOURCES.items()]),
                "## Pipeline stages (counts)",
                "scheduled → hydrated (data loaded) → composed (rendered) → injected (handed to the channel) → sent; "
                "`failed` counts messages that failed. Sent + failed ≤ injected; the rest is still in flight.",
                "## Error codes",
                _table(
                    "| Code | HTTP | Meaning | What to do |", [(f"`{c}`", str(h), m, d) for c, h, m, d in ERROR_CODES]
                ),
            ]
        )
        + "\n"
    )
