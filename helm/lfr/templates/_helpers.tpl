{{/* Names and labels ---------------------------------------------------------------------------------- */}}

{{- define "lfr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lfr.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<component>; call with (dict "root" $ "component" "embedder"). */}}
{{- define "lfr.componentName" -}}
{{- printf "%s-%s" (include "lfr.fullname" .root | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "lfr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every chart pod carries: the default-deny NetworkPolicy selects on exactly these. */}}
{{- define "lfr.instanceLabels" -}}
app.kubernetes.io/name: {{ include "lfr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lfr.labels" -}}
{{ include "lfr.instanceLabels" . }}
helm.sh/chart: {{ include "lfr.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lfr
{{- end -}}

{{/* (dict "root" $ "component" "ingest") */}}
{{- define "lfr.selectorLabels" -}}
{{ include "lfr.instanceLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "lfr.componentLabels" -}}
{{ include "lfr.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "lfr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lfr.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* What each service is and which backends it talks to: drives env, volumes and NetworkPolicies. */}}
{{- define "lfr.traits" -}}
ingest:
  command: [ingest]
  redis: true
  keystore: true
  milvus: false
  models: true
  alertKey: false
  egress: [kafka, redis, keystore, cameras]
embedder:
  command: [embed]
  redis: true
  keystore: true
  milvus: true
  models: true
  alertKey: true
  egress: [kafka, redis, keystore, milvus]
alerting:
  command: [alert]
  redis: true
  milvus: false
  models: false
  alertKey: true
  egress: [kafka, redis, webhooks]
api:
  command: [api]
  redis: true
  milvus: true
  models: true
  alertKey: true
  egress: [kafka, redis, milvus]
monitor:
  command: [monitor]
  redis: true
  milvus: false
  models: false
  alertKey: false
  egress: [kafka, redis]
gallery-import:
  command: [gallery, worker]
  redis: true
  keystore: false
  milvus: true
  models: true
  alertKey: false
  # Kafka (its records, dead letters), Redis (job counters and done-bitmap), Milvus (gallery rows). The
  # images come from a mounted volume, not over the network.
  egress: [kafka, redis, milvus]
{{- end -}}

{{- define "lfr.components" -}}
[ingest, embedder, alerting, api, monitor, gallery-import]
{{- end -}}

{{/* The values key of a component: "gallery-import" is configured under galleryImport (a key with a hyphen
cannot be set as .Values.x.y in templates or comfortably with --set); the others under their own name. */}}
{{- define "lfr.valuesKey" -}}
{{- if eq . "gallery-import" -}}galleryImport{{- else -}}{{ . }}{{- end -}}
{{- end -}}

{{/* The components a KEDA ScaledObject scales on consumer lag when autoscaling.keda.enabled. */}}
{{- define "lfr.kedaComponents" -}}
[embedder, alerting, gallery-import]
{{- end -}}

{{/* Image ------------------------------------------------------------------------------------------------ */}}

{{/* (dict "root" $ "values" <component values> "suffix" "-cuda") */}}
{{- define "lfr.image" -}}
{{- $root := .root -}}
{{- $over := .values.image | default dict -}}
{{- $repo := dig "repository" "" $over | default $root.Values.image.repository -}}
{{- $tag := dig "tag" "" $over | default $root.Values.image.tag | default $root.Chart.AppVersion | toString -}}
{{- $digest := dig "digest" "" $over | default $root.Values.image.digest -}}
{{- if or (eq $tag "latest") (hasSuffix ":latest" $repo) -}}
{{- fail "image tag `latest` is not allowed: pin a version (default: the chart's appVersion)" -}}
{{- end -}}
{{- if not $repo -}}
{{- fail "image.repository must be set" -}}
{{- end -}}
{{- if $digest -}}
{{- printf "%s:%s%s@%s" $repo $tag (.suffix | default "") $digest -}}
{{- else -}}
{{- printf "%s:%s%s" $repo $tag (.suffix | default "") -}}
{{- end -}}
{{- end -}}

{{/* Security contexts: fixed, not configurable ----------------------------------------------------------- */}}

{{- define "lfr.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "lfr.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
privileged: false
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment ------------------------------------------------------------------------------------------ */}}

{{- define "lfr.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{/* Kafka connection and topic layout: every pod, including the topics hook Job. */}}
{{- define "lfr.kafkaEnv" -}}
{{- $k := .Values.kafka -}}
- name: LFR_KAFKA__BOOTSTRAP_SERVERS
  value: {{ $k.bootstrapServers | quote }}
- name: LFR_KAFKA__SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- if hasPrefix "SASL" $k.securityProtocol }}
- name: LFR_KAFKA__SASL_MECHANISM
  value: {{ $k.saslMechanism | quote }}
{{- if $k.sasl.username }}
- name: LFR_KAFKA__SASL_USERNAME
  value: {{ $k.sasl.username | quote }}
{{- else }}
{{ include "lfr.secretEnv" (dict "name" "LFR_KAFKA__SASL_USERNAME" "secret" $k.sasl.existingSecret "key" $k.sasl.usernameKey) }}
{{- end }}
{{ include "lfr.secretEnv" (dict "name" "LFR_KAFKA__SASL_PASSWORD" "secret" $k.sasl.existingSecret "key" $k.sasl.passwordKey) }}
{{- end }}
{{- if $k.tls.existingSecret }}
- name: LFR_KAFKA__SSL_CAFILE
  value: {{ printf "/etc/lfr/kafka-tls/%s" $k.tls.caKey | quote }}
{{- if $k.tls.certKey }}
- name: LFR_KAFKA__SSL_CERTFILE
  value: {{ printf "/etc/lfr/kafka-tls/%s" $k.tls.certKey | quote }}
- name: LFR_KAFKA__SSL_KEYFILE
  value: {{ printf "/etc/lfr/kafka-tls/%s" $k.tls.keyKey | quote }}
{{- end }}
{{- end }}
- name: LFR_KAFKA__IDEMPOTENT_PRODUCER
  value: {{ $k.idempotentProducer | toString | quote }}
- name: LFR_KAFKA__REPLICATION_FACTOR
  value: {{ $k.replicationFactor | toString | quote }}
- name: LFR_KAFKA__CROPS_PARTITIONS
  value: {{ $k.partitions.crops | toString | quote }}
- name: LFR_KAFKA__HITS_PARTITIONS
  value: {{ $k.partitions.hits | toString | quote }}
- name: LFR_KAFKA__ALERTS_PARTITIONS
  value: {{ $k.partitions.alerts | toString | quote }}
- name: LFR_KAFKA__CROPS_RETENTION_MS
  value: {{ $k.cropsRetentionMs | toString | quote }}
- name: LFR_ALERTING__RETENTION_DAYS
  value: {{ .Values.alerting.retentionDays | toString | quote }}
{{- end -}}

{{- define "lfr.observabilityEnv" -}}
- name: LFR_OBSERVABILITY__HEALTH_HOST
  value: "0.0.0.0"
- name: LFR_OBSERVABILITY__HEALTH_PORT
  value: {{ .Values.observability.healthPort | toString | quote }}
- name: LFR_OBSERVABILITY__LOG_JSON
  value: "true"
- name: LFR_OBSERVABILITY__LOG_LEVEL
  value: {{ .Values.observability.logLevel | quote }}
{{- end -}}

{{/* The models directory the services read: baked into the image, or the initContainer's emptyDir. */}}
{{- define "lfr.modelsDir" -}}
{{- if .Values.models.buildAtStartup -}}/var/lib/lfr-models{{- else -}}/opt/lfr/models{{- end -}}
{{- end -}}

{{/* A long-running service's env; (dict "root" $ "component" "api"). */}}
{{- define "lfr.serviceEnv" -}}
{{- $root := .root -}}
{{- $name := .component -}}
{{- $c := index $root.Values (include "lfr.valuesKey" $name) -}}
{{- $t := index (include "lfr.traits" $root | fromYaml) $name -}}
- name: LFR_CONFIG
  value: /etc/lfr/config/settings.yaml
- name: LFR_DATA_DIR
  value: /var/lib/lfr
{{ include "lfr.observabilityEnv" $root }}
{{ include "lfr.kafkaEnv" $root }}
{{- if $t.redis }}
{{- $rs := $root.Values.redis.sentinel }}
{{- if $rs.hosts }}
- name: LFR_REDIS__SENTINELS
  value: {{ toJson $rs.hosts | quote }}
- name: LFR_REDIS__SENTINEL_MASTER
  value: {{ $rs.master | quote }}
{{- if $rs.existingSecret }}
{{ include "lfr.secretEnv" (dict "name" "LFR_REDIS__SENTINEL_PASSWORD" "secret" $rs.existingSecret "key" $rs.passwordKey) }}
{{- end }}
{{- if $root.Values.redis.tls.existingSecret }}
- name: LFR_REDIS__TLS
  value: "true"
- name: LFR_REDIS__TLS_CA_FILE
  value: {{ printf "/etc/lfr/redis-tls/%s" $root.Values.redis.tls.caKey | quote }}
{{- end }}
{{- else }}
- name: LFR_REDIS__URL
  value: {{ include "lfr.redisUrl" $root | quote }}
{{- end }}
{{- if $root.Values.redis.existingSecret }}
{{ include "lfr.secretEnv" (dict "name" "LFR_REDIS__PASSWORD" "secret" $root.Values.redis.existingSecret "key" $root.Values.redis.passwordKey) }}
{{- end }}
{{- end }}
{{- $ks := $root.Values.keystore }}
{{- if and $t.keystore (or $ks.url $ks.deploy.enabled) }}
- name: LFR_REDIS__KEYSTORE_URL
  value: {{ $ks.url | default (printf "redis://%s:6379/0" (include "lfr.componentName" (dict "root" $root "component" "keystore"))) | quote }}
{{- if $ks.existingSecret }}
{{ include "lfr.secretEnv" (dict "name" "LFR_REDIS__KEYSTORE_PASSWORD" "secret" $ks.existingSecret "key" $ks.passwordKey) }}
{{- end }}
{{- end }}
{{- if $t.milvus }}
- name: LFR_MILVUS__URI
  value: {{ $root.Values.milvus.uri | quote }}
{{- if $root.Values.milvus.tls.existingSecret }}
- name: LFR_MILVUS__TLS_CA_FILE
  value: {{ printf "/etc/lfr/milvus-tls/%s" $root.Values.milvus.tls.caKey | quote }}
{{- end }}
{{- if $root.Values.milvus.tls.serverName }}
- name: LFR_MILVUS__TLS_SERVER_NAME
  value: {{ $root.Values.milvus.tls.serverName | quote }}
{{- end }}
{{- if $root.Values.milvus.existingSecret }}
{{ include "lfr.secretEnv" (dict "name" "LFR_MILVUS__TOKEN" "secret" $root.Values.milvus.existingSecret "key" $root.Values.milvus.tokenKey) }}
{{- end }}
{{- end }}
{{- if and $t.alertKey $root.Values.crypto.existingSecret }}
{{ include "lfr.secretEnv" (dict "name" "LFR_CRYPTO__ALERT_KEY" "secret" $root.Values.crypto.existingSecret "key" $root.Values.crypto.alertKeyKey) }}
{{- end }}
{{- if $t.models }}
- name: LFR_MODELS__DIR
  value: {{ include "lfr.modelsDir" $root | quote }}
- name: LFR_MODELS__EXECUTION_PROVIDER
  value: {{ if and (eq $name "embedder") $c.gpu.enabled }}"cuda"{{ else }}"cpu"{{ end }}
- name: LFR_MODELS__INTRA_OP_THREADS
  value: {{ $c.intraOpThreads | toString | quote }}
{{- end }}
{{- if eq $name "ingest" }}
- name: LFR_INGEST__CAMERAS_FILE
  value: {{ include "lfr.camerasFile" $root | quote }}
- name: LFR_INGEST__REPLICAS
  value: {{ $c.replicas | toString | quote }}
{{- if eq $c.rtspTransport "tcp" }}
- name: OPENCV_FFMPEG_CAPTURE_OPTIONS
  value: "rtsp_transport;tcp"
{{- end }}
{{- end }}
{{- if eq $name "alerting" }}
{{- if $c.webhooks.existingSecret }}
{{ include "lfr.secretEnv" (dict "name" "LFR_ALERTING__WEBHOOKS" "secret" $c.webhooks.existingSecret "key" $c.webhooks.key) }}
{{- end }}
{{- end }}
{{- if eq $name "api" }}
- name: LFR_API__HOST
  value: "0.0.0.0"
- name: LFR_API__PORT
  value: {{ $c.port | toString | quote }}
{{- with $c.auth }}
{{- if and .existingSecret .jwtPublicKeysKey }}
{{ include "lfr.secretEnv" (dict "name" "LFR_API__JWT_PUBLIC_KEYS" "secret" .existingSecret "key" .jwtPublicKeysKey) }}
{{- end }}
{{- if and .existingSecret .apiKeysKey }}
{{ include "lfr.secretEnv" (dict "name" "LFR_API__API_KEYS" "secret" .existingSecret "key" .apiKeysKey) }}
{{- end }}
{{- if .jwtAudience }}
- name: LFR_API__JWT_AUDIENCE
  value: {{ .jwtAudience | quote }}
{{- end }}
{{- if .jwtIssuer }}
- name: LFR_API__JWT_ISSUER
  value: {{ .jwtIssuer | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if eq $name "monitor" }}
- name: LFR_MONITOR__APP_ID
  value: {{ $c.appId | quote }}
{{- end }}
{{- with $c.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* rediss:// URLs get the mounted CA as ssl_ca_certs (redis-py reads it from the URL query). */}}
{{- define "lfr.redisUrl" -}}
{{- $r := .Values.redis -}}
{{- if $r.tls.existingSecret -}}
{{- $sep := ternary "&" "?" (contains "?" $r.url) -}}
{{- printf "%s%sssl_ca_certs=/etc/lfr/redis-tls/%s" $r.url $sep $r.tls.caKey -}}
{{- else -}}
{{- $r.url -}}
{{- end -}}
{{- end -}}

{{- define "lfr.camerasFile" -}}
{{- if .Values.ingest.camerasSecret.existingSecret -}}
/etc/lfr/cameras/{{ .Values.ingest.camerasSecret.key }}
{{- else -}}
/etc/lfr/config/cameras.yaml
{{- end -}}
{{- end -}}

{{/* Volumes ---------------------------------------------------------------------------------------------- */}}

{{- define "lfr.kafkaTlsVolume" -}}
{{- if .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "lfr.kafkaTlsMount" -}}
{{- if .Values.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: /etc/lfr/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "lfr.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.volumes.tmpSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.volumes.dataSizeLimit }}
{{- end -}}

{{- define "lfr.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/lfr
{{- end -}}

{{/* Probes on the health port (names the container port "health"). */}}
{{- define "lfr.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: health}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: health}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: health}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- end -}}

{{/* NetworkPolicy egress rule from a flow ({to, ports}); refuses a rule that would allow everything. */}}
{{- define "lfr.egressRule" -}}
{{- $flow := index .root.Values.networkPolicy .flow -}}
{{- if and (empty $flow.to) (empty $flow.ports) -}}
{{- fail (printf "networkPolicy.%s needs `to` peers or `ports`: an empty rule would allow all egress" .flow) -}}
{{- end -}}
{{- $rule := dict -}}
{{- with $flow.to -}}{{- $_ := set $rule "to" . -}}{{- end -}}
{{- with $flow.ports -}}{{- $_ := set $rule "ports" . -}}{{- end -}}
{{- toYaml (list $rule) -}}
{{- end -}}

{{/* "true" when an HPA or a KEDA ScaledObject owns the replica count; (dict "root" $ "component" name). */}}
{{- define "lfr.externallyScaled" -}}
{{- $c := index .root.Values (include "lfr.valuesKey" .component) -}}
{{- $keda := and .root.Values.autoscaling.keda.enabled (has .component (include "lfr.kedaComponents" .root | fromYamlArray)) -}}
{{- if or $keda (dig "autoscaling" "enabled" false $c) -}}true{{- end -}}
{{- end -}}
