{{/* Names, labels and the image reference shared by every template. */}}

{{- define "ferrolb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>", or the release name alone when it already contains the chart name. */}}
{{- define "ferrolb.fullname" -}}
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

{{- define "ferrolb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ferrolb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferrolb
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component; call with (dict "root" $ "component" "ipam"). */}}
{{- define "ferrolb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferrolb.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ferrolb.componentLabels" -}}
{{ include "ferrolb.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ferrolb.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "ferrolb.ipam.serviceAccountName" -}}
{{- if .Values.ipam.serviceAccount.create -}}
{{- default (printf "%s-ipam" (include "ferrolb.fullname" .)) .Values.ipam.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.ipam.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ferrolb.announcer.serviceAccountName" -}}
{{- if .Values.announcer.serviceAccount.create -}}
{{- default (printf "%s-announcer" (include "ferrolb.fullname" .)) .Values.announcer.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.announcer.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ferrolb.peerKeySecretName" -}}
{{- default (printf "%s-peer-key" (include "ferrolb.fullname" .)) .Values.peerKey.existingSecret -}}
{{- end -}}

{{/* The restricted Pod Security profile's container settings (the controller runs as any non-root user). */}}
{{- define "ferrolb.restrictedContainerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
