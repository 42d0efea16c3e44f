{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "kubesync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "kubesync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubesync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of the chart's own objects. Deliberately NOT app.kubernetes.io/managed-by=kubesync:
     the agent must never prune or "correct" itself. */}}
{{- define "kubesync.labels" -}}
helm.sh/chart: {{ include "kubesync.chart" . }}
{{ include "kubesync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kubesync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubesync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubesync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubesync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespaces the agent manages when not cluster-wide. */}}
{{- define "kubesync.namespaces" -}}
{{- if .Values.rbac.namespaces }}
{{- join "," .Values.rbac.namespaces }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The agent config: values.config plus what the chart decides (listen, lease, cache). */}}
{{- define "kubesync.config" -}}
{{- $cfg := deepCopy (default dict .Values.config) }}
{{- $_ := set $cfg "listen" (printf "0.0.0.0:%v" .Values.service.port) }}
{{- $_ := set $cfg "cacheDir" "/var/cache/kubesync" }}
{{- $_ := set $cfg "inventoryNamespace" .Release.Namespace }}
{{- $le := deepCopy (default dict $cfg.leaderElection) }}
{{- $_ := set $le "enabled" true }}
{{- $_ := set $le "leaseName" (include "kubesync.fullname" .) }}
{{- $_ := set $le "namespace" .Release.Namespace }}
{{- $_ := set $le "labelPod" .Values.webhookService.enabled }}
{{- $_ := set $cfg "leaderElection" $le }}
{{- if not .Values.rbac.clusterWide }}
{{- $drift := deepCopy (default dict $cfg.drift) }}
{{- $_ := set $drift "namespaces" (splitList "," (include "kubesync.namespaces" .)) }}
{{- $_ := set $cfg "drift" $drift }}
{{- end }}
{{- if .Values.webhookSecret.secretName }}
{{- $wh := deepCopy (default dict $cfg.webhook) }}
{{- $_ := set $wh "secretFile" (printf "/var/run/secrets/kubesync/webhook-secret/%s" .Values.webhookSecret.key) }}
{{- $_ := set $cfg "webhook" $wh }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}
