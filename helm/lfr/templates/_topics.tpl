{{/*
The topic table, mirroring lfr.core.topics.topic_specs (tests/deploy checks the two agree). Used for the
Strimzi KafkaTopic resources; the hook Job gets the same numbers from its environment.
*/}}
{{- define "lfr.topics" -}}
{{- $k := .Values.kafka -}}
{{- $day := 86400000 -}}
{{- $alertRetention := mul (int .Values.alerting.retentionDays) $day -}}
- {name: lfr.crops.v1, short: crops, partitions: {{ $k.partitions.crops }}, retentionMs: {{ $k.cropsRetentionMs }}}
- {name: lfr.hits.v1, short: hits, partitions: {{ $k.partitions.hits }}, retentionMs: {{ $alertRetention }}}
- {name: lfr.alerts.v1, short: alerts, partitions: {{ $k.partitions.alerts }}, retentionMs: {{ $alertRetention }}}
- {name: lfr.alerts.json.v1, short: alerts-json, partitions: {{ $k.partitions.alerts }}, retentionMs: {{ $alertRetention }}}
- {name: lfr.alert-updates.v1, short: alert-updates, partitions: {{ $k.partitions.alerts }}, retentionMs: {{ $alertRetention }}}
- {name: lfr.alert-updates.json.v1, short: alert-updates-json, partitions: {{ $k.partitions.alerts }}, retentionMs: {{ $alertRetention }}}
- {name: lfr.adjudications.v1, short: adjudications, partitions: {{ $k.partitions.hits }}, retentionMs: -1}
- {name: lfr.audit.v1, short: audit, partitions: 1, retentionMs: -1}
- {name: lfr.deadletter.v1, short: deadletter, partitions: 3, retentionMs: {{ mul 14 $day }}}
- {name: lfr.camera-stats.v1, short: camera-stats, partitions: {{ $k.partitions.alerts }}, retentionMs: {{ $day }}}
- {name: lfr.ops-events.v1, short: ops-events, partitions: 3, retentionMs: {{ mul 14 $day }}}
- {name: lfr.gallery-import.v1, short: gallery-import, partitions: 24, retentionMs: {{ mul 7 $day }}}
{{- $app := .Values.monitor.appId }}
- {name: {{ $app }}-camera-minutes-changelog, short: monitor-camera-minutes, partitions: {{ $k.partitions.alerts }}, retentionMs: {{ mul 7 $day }}, cleanup: "compact,delete"}
- {name: {{ $app }}-deployment-alerts-changelog, short: monitor-deployment-alerts, partitions: {{ $k.partitions.alerts }}, retentionMs: {{ mul 7 $day }}, cleanup: "compact,delete"}
- {name: {{ $app }}-deployment-outcomes-changelog, short: monitor-deployment-outcomes, partitions: {{ $k.partitions.hits }}, retentionMs: {{ mul 7 $day }}, cleanup: "compact,delete"}
{{- end -}}
