"""`lfr status` as text: the same document as ``--json``, laid out for a terminal."""

from __future__ import annotations

from lfr.monitor.schema import OpsStatus


def _fps(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def render(s: OpsStatus) -> str:
    lines = [f"LFR status at {s.generated_at}: {'healthy' if s.healthy else 'ATTENTION'}", "", "stack"]
    for part in s.stack:
        lines.append(f"  {part.name:9s} {'up  ' if part.reachable else 'DOWN'}  {part.detail}")
    mon = s.monitor
    state = f"running on {mon.host}, updated {mon.updated_at}" if mon.running else "NOT RUNNING"
    lines.append(f"  {'monitor':9s} {state}")
    lines += ["", "consumer groups"]
    for g in s.groups:
        lines.append(f"  {g.group} ({g.role}): {g.state}, {len(g.members)} member(s), lag {g.lag}")
        for p in g.partitions:
            if p.lag:
                committed = "-" if p.committed is None else str(p.committed)
                lines.append(f"    {p.topic}[{p.partition}] committed {committed} end {p.end} lag {p.lag}")
    lines += ["", "throughput (records/s since the previous status)"]
    for t in s.throughput:
        rate = "-" if t.records_per_s is None else f"{t.records_per_s:.1f}"
        lines.append(f"  {t.topic:28s} {rate:>8s}  ({t.end_offset_total} in all)")
    lines += ["", "cameras"]
    if not s.cameras:
        lines.append("  (none)")
    for c in s.cameras:
        minute = c.last_minute
        figures = (
            f"last minute: {minute.frames} frames, {minute.faces} faces, {minute.crops} crops"
            if minute
            else ""
        )
        lines.append(
            f"  {c.camera_id:20s} {c.health:11s} in {_fps(c.input_fps)} fps,"
            f" analysed {_fps(c.analysed_fps)} fps  {figures}"
        )
    lines += ["", "deployments"]
    if not s.deployments:
        lines.append("  (none)")
    for d in s.deployments:
        jump = "  RATE JUMP" if d.alert_rate_jump else ""
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(d.outcomes.items())) or "no adjudications"
        lines.append(
            f"  {d.deployment_id:20s} {d.status:10s} alerts last minute {d.alerts_last_minute} "
            f"(baseline {d.alerts_baseline_per_min:.1f}/min){jump}; {outcomes}"
        )
    k = s.keys
    ttl = f", TTL {k.crop_key_ttl_s[0]}-{k.crop_key_ttl_s[-1]} s" if k.crop_key_ttl_s else ""
    crop = f"{k.crop_keys}{ttl}" if k.crop_keys_visible else "not visible from here (no key store configured)"
    lines += ["", "keys", f"  crop keys alive: {crop}"]
    for a in k.alert_keys:
        lines.append(f"  alert key {a.deployment_id}: TTL {a.ttl_s if a.ttl_s is not None else '-'} s")
    if s.events:
        lines += ["", "recent operations events"]
        for e in s.events[:10]:
            lines.append(f"  {e.at} {e.kind:18s} {e.subject}")
    return "\n".join(lines)
