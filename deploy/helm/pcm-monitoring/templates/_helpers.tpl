{{/*
Names, labels and the blocks several templates share.
*/}}

{{- define "pcm-monitoring.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart, or the release name alone when it already contains the chart name.
Kept to 50 characters so that "-processor" and the like still fit in 63.
*/}}
{{- define "pcm-monitoring.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pcm-monitoring.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pcm-monitoring.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pcm-monitoring.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "pcm-monitoring.labels" -}}
helm.sh/chart: {{ include "pcm-monitoring.chart" . }}
{{ include "pcm-monitoring.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pcm-monitoring
{{- end }}

{{/*
Per-component names and labels; call with (dict "root" $ "component" "intake").
*/}}
{{- define "pcm-monitoring.componentName" -}}
{{- printf "%s-%s" (include "pcm-monitoring.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pcm-monitoring.componentSelectorLabels" -}}
{{ include "pcm-monitoring.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "pcm-monitoring.componentLabels" -}}
{{ include "pcm-monitoring.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "pcm-monitoring.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pcm-monitoring.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pcm-monitoring.image" -}}
{{- $image := .Values.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag | toString) }}
{{- end }}
{{- end }}

{{/*
Catalogue override: the ConfigMap to mount ("" when the image's own catalogues are used).
*/}}
{{- define "pcm-monitoring.cataloguesConfigMap" -}}
{{- if .Values.catalogues.existingConfigMap }}
{{- .Values.catalogues.existingConfigMap }}
{{- else if .Values.catalogues.files }}
{{- include "pcm-monitoring.componentName" (dict "root" . "component" "catalogues") }}
{{- end }}
{{- end }}

{{/*
ConfigMap keys cannot hold "/": a file "calendar/x.csv" is stored under "calendar__x.csv".
*/}}
{{- define "pcm-monitoring.catalogueKey" -}}
{{- . | replace "/" "__" }}
{{- end }}

{{/*
The non-secret settings every component reads (PCM_* env vars), as a YAML map of strings. The
ConfigMap holds them; the migration hook gets them inline (it runs before the ConfigMap exists).
*/}}
{{- define "pcm-monitoring.config" -}}
{{- $v := .Values -}}
PCM_ENV: {{ $v.config.env | quote }}
PCM_LOG_LEVEL: {{ $v.config.logLevel | quote }}
PCM_LOG_JSON: {{ $v.config.logJson | toString | quote }}
PCM_TOPIC_PREFIX: {{ $v.config.topicPrefix | quote }}
PCM_KAFKA_BOOTSTRAP: {{ required "kafka.bootstrap is required" $v.kafka.bootstrap | quote }}
PCM_KAFKA_REPLICATION_FACTOR: {{ $v.kafka.replicationFactor | toString | quote }}
PCM_CLICKHOUSE_HOST: {{ required "clickhouse.host is required" $v.clickhouse.host | quote }}
PCM_CLICKHOUSE_PORT: {{ $v.clickhouse.port | toString | quote }}
PCM_CLICKHOUSE_USER: {{ $v.clickhouse.user | quote }}
PCM_CLICKHOUSE_DATABASE: {{ $v.clickhouse.database | quote }}
PCM_POSTGRES_HOST: {{ required "postgres.host is required" $v.postgres.host | quote }}
PCM_POSTGRES_PORT: {{ $v.postgres.port | toString | quote }}
PCM_POSTGRES_USER: {{ $v.postgres.user | quote }}
PCM_POSTGRES_DATABASE: {{ $v.postgres.database | quote }}
PCM_METRICS_HOST: "0.0.0.0"
{{- if include "pcm-monitoring.cataloguesConfigMap" . }}
PCM_CATALOGUE_DIR: {{ $v.catalogues.mountPath | quote }}
{{- end }}
{{- range $key, $value := $v.config.extraEnv }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
The ClickHouse password, from the existing Secret (an env entry).
*/}}
{{- define "pcm-monitoring.clickhousePasswordEnv" -}}
- name: PCM_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "clickhouse.existingSecret is required (an existing Secret with the ClickHouse password)" .Values.clickhouse.existingSecret | quote }}
      key: {{ .Values.clickhouse.passwordKey | quote }}
{{- end }}

{{/*
The PostgreSQL password, from the existing Secret (an env entry).
*/}}
{{- define "pcm-monitoring.postgresPasswordEnv" -}}
- name: PCM_POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "postgres.existingSecret is required (an existing Secret with the PostgreSQL password)" .Values.postgres.existingSecret | quote }}
      key: {{ .Values.postgres.passwordKey | quote }}
{{- end }}

{{/*
Checksum of the configuration a pod reads, so that a change rolls the pods.
*/}}
{{- define "pcm-monitoring.configChecksum" -}}
{{- printf "%s\n%s" (include "pcm-monitoring.config" .) (toYaml .Values.catalogues.files) | sha256sum }}
{{- end }}

{{- define "pcm-monitoring.prometheusAnnotations" -}}
{{- if .root.Values.prometheusAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/*
Volumes and mounts of the catalogue override.
*/}}
{{- define "pcm-monitoring.cataloguesVolume" -}}
{{- $name := include "pcm-monitoring.cataloguesConfigMap" . -}}
{{- if $name -}}
- name: catalogues
  configMap:
    name: {{ $name | quote }}
    {{- if .Values.catalogues.existingConfigMap }}
    {{- with .Values.catalogues.items }}
    items:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- else }}
    items:
      {{- range $path, $_ := .Values.catalogues.files }}
      - key: {{ include "pcm-monitoring.catalogueKey" $path | quote }}
        path: {{ $path | quote }}
      {{- end }}
    {{- end }}
{{- end }}
{{- end }}

{{- define "pcm-monitoring.cataloguesMount" -}}
{{- if include "pcm-monitoring.cataloguesConfigMap" . -}}
- name: catalogues
  mountPath: {{ .Values.catalogues.mountPath | quote }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
A soft spread of a component's replicas over nodes, plus the user's constraints.
Call with (dict "root" $ "component" "intake" "values" .Values.intake).
*/}}
{{- define "pcm-monitoring.topologySpread" -}}
{{- $constraints := .values.topologySpreadConstraints }}
{{- if .values.spreadAcrossNodes }}
{{- $constraints = append $constraints (dict
      "maxSkew" 1
      "topologyKey" "kubernetes.io/hostname"
      "whenUnsatisfiable" "ScheduleAnyway"
      "labelSelector" (dict "matchLabels" (include "pcm-monitoring.componentSelectorLabels" . | fromYaml))) }}
{{- end }}
{{- with $constraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Scheduling fields shared by the Deployments: call with a component's values.
*/}}
{{- define "pcm-monitoring.scheduling" -}}
{{- with .priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "pcm-monitoring.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
One step of the migration hook (a container); call with (dict "root" $ "step" $step).
*/}}
{{- define "pcm-monitoring.migrationContainer" -}}
{{- $root := .root -}}
- name: {{ .step.name }}
  image: {{ include "pcm-monitoring.image" $root | quote }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command:
    {{- toYaml .step.command | nindent 4 }}
  env:
    {{- range $name, $value := include "pcm-monitoring.config" $root | fromYaml }}
    - name: {{ $name }}
      value: {{ $value | quote }}
    {{- end }}
    {{- if eq .step.name "clickhouse" }}
    {{- include "pcm-monitoring.clickhousePasswordEnv" $root | nindent 4 }}
    {{- end }}
    {{- if eq .step.name "postgres" }}
    {{- include "pcm-monitoring.postgresPasswordEnv" $root | nindent 4 }}
    {{- end }}
    - name: PYTHONDONTWRITEBYTECODE
      value: "1"
  resources:
    {{- toYaml $root.Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}
