{{/*
The pod template every long-running service shares; (dict "root" $ "component" "embedder").
*/}}
{{- define "lfr.podTemplate" -}}
{{- $root := .root -}}
{{- $name := .component -}}
{{- $c := index $root.Values (include "lfr.valuesKey" $name) -}}
{{- $t := index (include "lfr.traits" $root | fromYaml) $name -}}
{{- $gpu := and (eq $name "embedder") (dig "gpu" "enabled" false $c) -}}
{{- $buildModels := and $t.models $root.Values.models.buildAtStartup -}}
{{- $image := include "lfr.image" (dict "root" $root "values" $c "suffix" (ternary (dig "gpu" "imageTagSuffix" "" $c) "" $gpu)) -}}
metadata:
  labels:
    {{- include "lfr.selectorLabels" (dict "root" $root "component" $name) | nindent 4 }}
    app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- /* Roll pods when what they read changes: only ingest reads the camera list. */}}
    checksum/config: {{ list $root.Values.settings (ternary $root.Values.ingest.cameras "" (eq $name "ingest")) | toJson | sha256sum }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "lfr.serviceAccountName" $root }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with $root.Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- if and $gpu $c.gpu.runtimeClassName }}
  runtimeClassName: {{ $c.gpu.runtimeClassName }}
  {{- end }}
  terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
  securityContext:
    {{- include "lfr.podSecurityContext" $root | nindent 4 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $buildModels }}
  initContainers:
    - name: models
      image: {{ $image }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: ["models", "build"]
      env:
        - name: LFR_DATA_DIR
          value: /var/lib/lfr
        - name: LFR_MODELS__DIR
          value: {{ include "lfr.modelsDir" $root | quote }}
        {{- include "lfr.observabilityEnv" $root | nindent 8 }}
      resources:
        {{- toYaml $root.Values.models.buildResources | nindent 8 }}
      securityContext:
        {{- include "lfr.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        {{- include "lfr.scratchMounts" $root | nindent 8 }}
        - name: models
          mountPath: /var/lib/lfr-models
  {{- end }}
  containers:
    - name: {{ $name }}
      image: {{ $image }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args: {{ $t.command | toJson }}
      ports:
        - name: health
          containerPort: {{ $root.Values.observability.healthPort }}
          protocol: TCP
        {{- if eq $name "api" }}
        - name: http
          containerPort: {{ $c.port }}
          protocol: TCP
        {{- end }}
      env:
        {{- include "lfr.serviceEnv" (dict "root" $root "component" $name) | nindent 8 }}
      {{- include "lfr.probes" $root | nindent 6 }}
      resources:
        {{- $res := deepCopy $c.resources }}
        {{- if $gpu }}
        {{- $_ := set $res "limits" (merge (dict $c.gpu.resourceName (int $c.gpu.count)) ($res.limits | default dict)) }}
        {{- end }}
        {{- toYaml $res | nindent 8 }}
      securityContext:
        {{- include "lfr.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        {{- include "lfr.scratchMounts" $root | nindent 8 }}
        - name: config
          mountPath: /etc/lfr/config
          readOnly: true
        {{- if and (eq $name "ingest") $c.camerasSecret.existingSecret }}
        - name: cameras
          mountPath: /etc/lfr/cameras
          readOnly: true
        {{- end }}
        {{- if $buildModels }}
        - name: models
          mountPath: /var/lib/lfr-models
          readOnly: true
        {{- end }}
        {{- if eq $name "gallery-import" }}
        # The import root, read-only, at the path `lfr gallery submit` listed: records carry paths only.
        - name: import-source
          mountPath: {{ $c.source.mountPath }}
          readOnly: true
        {{- end }}
        {{- with (include "lfr.kafkaTlsMount" $root) }}{{ . | trim | nindent 8 }}{{ end }}
        {{- if and $t.redis $root.Values.redis.tls.existingSecret }}
        - name: redis-tls
          mountPath: /etc/lfr/redis-tls
          readOnly: true
        {{- end }}
        {{- if and $t.milvus $root.Values.milvus.tls.existingSecret }}
        - name: milvus-tls
          mountPath: /etc/lfr/milvus-tls
          readOnly: true
        {{- end }}
  volumes:
    {{- include "lfr.scratchVolumes" $root | nindent 4 }}
    - name: config
      configMap:
        name: {{ include "lfr.fullname" $root }}-config
        items:
          - key: settings.yaml
            path: settings.yaml
          {{- if eq $name "ingest" }}
          - key: cameras.yaml
            path: cameras.yaml
          {{- end }}
    {{- if and (eq $name "ingest") $c.camerasSecret.existingSecret }}
    - name: cameras
      secret:
        secretName: {{ $c.camerasSecret.existingSecret }}
        defaultMode: 0440
        items:
          - key: {{ $c.camerasSecret.key }}
            path: {{ $c.camerasSecret.key }}
    {{- end }}
    {{- if $buildModels }}
    - name: models
      emptyDir:
        sizeLimit: {{ $root.Values.volumes.modelsSizeLimit }}
    {{- end }}
    {{- if eq $name "gallery-import" }}
    - name: import-source
      {{- if $c.source.existingClaim }}
      persistentVolumeClaim:
        claimName: {{ $c.source.existingClaim }}
        readOnly: true
      {{- else }}
      {{- toYaml $c.source.volume | nindent 6 }}
      {{- end }}
    {{- end }}
    {{- with (include "lfr.kafkaTlsVolume" $root) }}{{ . | trim | nindent 4 }}{{ end }}
    {{- if and $t.redis $root.Values.redis.tls.existingSecret }}
    - name: redis-tls
      secret:
        secretName: {{ $root.Values.redis.tls.existingSecret }}
        defaultMode: 0440
        items:
          - key: {{ $root.Values.redis.tls.caKey }}
            path: {{ $root.Values.redis.tls.caKey }}
    {{- end }}
    {{- if and $t.milvus $root.Values.milvus.tls.existingSecret }}
    - name: milvus-tls
      secret:
        secretName: {{ $root.Values.milvus.tls.existingSecret }}
        defaultMode: 0440
        items:
          - key: {{ $root.Values.milvus.tls.caKey }}
            path: {{ $root.Values.milvus.tls.caKey }}
    {{- end }}
  {{- if $root.Values.topologySpread }}
  topologySpreadConstraints:
    {{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
    - maxSkew: 1
      topologyKey: {{ $key }}
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "lfr.selectorLabels" (dict "root" $root "component" $name) | nindent 10 }}
    {{- end }}
  {{- end }}
  {{- with $c.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $c.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $c.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/*
Render-time checks. Included once, from configmap.yaml, so every render runs them.
*/}}
{{- define "lfr.validate" -}}
{{- $v := .Values -}}
{{- $k := $v.kafka -}}
{{- if not (has $k.securityProtocol (list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL")) -}}
{{- fail (printf "kafka.securityProtocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, got %q" $k.securityProtocol) -}}
{{- end -}}
{{- if hasPrefix "SASL" $k.securityProtocol -}}
{{- if not (has $k.saslMechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) -}}
{{- fail (printf "kafka.saslMechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with %s" $k.securityProtocol) -}}
{{- end -}}
{{- if not $k.sasl.existingSecret -}}
{{- fail "kafka.sasl.existingSecret is required with a SASL securityProtocol (the password is never a value)" -}}
{{- end -}}
{{- end -}}
{{- if and $k.tls.existingSecret (not (hasSuffix "SSL" $k.securityProtocol)) -}}
{{- fail "kafka.tls.existingSecret is set but kafka.securityProtocol is not SSL or SASL_SSL" -}}
{{- end -}}
{{- if and $k.tls.certKey (not $k.tls.keyKey) -}}
{{- fail "kafka.tls.certKey needs kafka.tls.keyKey (mutual TLS)" -}}
{{- end -}}
{{- if and $v.redis.tls.existingSecret (not $v.redis.sentinel.hosts) (not (hasPrefix "rediss://" $v.redis.url)) -}}
{{- fail "redis.tls.existingSecret is set but redis.url is not rediss:// (and no redis.sentinel.hosts)" -}}
{{- end -}}
{{- if and $v.milvus.tls.existingSecret (not (hasPrefix "https://" $v.milvus.uri)) -}}
{{- fail "milvus.tls.existingSecret is set but milvus.uri is not https://" -}}
{{- end -}}
{{- if not $v.crypto.existingSecret -}}
{{- fail "crypto.existingSecret is required: without a shared alert key each pod would generate its own, and probes sealed by the embedder could not be opened by alerting or the api" -}}
{{- end -}}
{{- if and $k.strimzi.enabled (not $k.strimzi.clusterName) -}}
{{- fail "kafka.strimzi.clusterName is required when kafka.strimzi.enabled" -}}
{{- end -}}
{{- /* Partitions bound useful consumers: more replicas than partitions only idle. The gallery import
topic's 24 partitions are fixed (lfr.core.topics.GALLERY_IMPORT_PARTITIONS, the table in _topics.tpl). */ -}}
{{- $limits := dict "embedder" (int $k.partitions.crops) "alerting" (int $k.partitions.hits) "galleryImport" 24 -}}
{{- $topics := dict "embedder" "lfr.crops.v1" "alerting" "lfr.hits.v1" "galleryImport" "lfr.gallery-import.v1" -}}
{{- range $name, $max := $limits -}}
{{- $c := index $v $name -}}
{{- if gt (int $c.replicas) $max -}}
{{- fail (printf "%s.replicas=%d exceeds the %d partitions of %s" $name (int $c.replicas) $max (index $topics $name)) -}}
{{- end -}}
{{- if and $c.autoscaling.enabled (gt (int $c.autoscaling.maxReplicas) $max) -}}
{{- fail (printf "%s.autoscaling.maxReplicas=%d exceeds the %d partitions of %s" $name (int $c.autoscaling.maxReplicas) $max (index $topics $name)) -}}
{{- end -}}
{{- if $v.autoscaling.keda.enabled -}}
{{- $s := index $v.autoscaling.keda $name -}}
{{- if gt (int $s.maxReplicaCount) $max -}}
{{- fail (printf "autoscaling.keda.%s.maxReplicaCount=%d exceeds the %d partitions of %s" $name (int $s.maxReplicaCount) $max (index $topics $name)) -}}
{{- end -}}
{{- if gt (int $s.minReplicaCount) (int $s.maxReplicaCount) -}}
{{- fail (printf "autoscaling.keda.%s.minReplicaCount exceeds maxReplicaCount" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $gi := $v.galleryImport -}}
{{- if $gi.enabled -}}
{{- if and (not $gi.source.existingClaim) (empty $gi.source.volume) -}}
{{- fail "galleryImport.enabled needs galleryImport.source.existingClaim or galleryImport.source.volume: the workers read the images at the path `lfr gallery submit` listed, from storage every worker mounts" -}}
{{- end -}}
{{- if not (hasPrefix "/" ($gi.source.mountPath | toString)) -}}
{{- fail "galleryImport.source.mountPath must be an absolute path (the import root's path on the submitting host)" -}}
{{- end -}}
{{- end -}}
{{- if lt (int $v.ingest.replicas) 1 -}}
{{- fail "ingest.replicas must be at least 1" -}}
{{- end -}}
{{- end -}}
