{{- define "flowgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "flowgate.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "flowgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flowgate.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-secrets" (include "flowgate.fullname" .)) -}}
{{- end -}}

{{- define "flowgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The environment every Flowgate container gets: the database and the key from the Secret. */}}
{{- define "flowgate.env" -}}
- name: FLOWGATE_CONFIG
  value: /etc/flowgate/flowgate.yaml
- name: FLOWGATE_PUBLIC_URL
  value: {{ .Values.publicURL | quote }}
- name: FLOWGATE_DATABASE
  valueFrom:
    secretKeyRef:
      name: {{ include "flowgate.secretName" . }}
      key: database-url
- name: FLOWGATE_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "flowgate.secretName" . }}
      key: secret-key
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "flowgate.volumes" -}}
- name: config
  configMap:
    name: {{ include "flowgate.fullname" . }}-config
- name: tmp
  emptyDir: {}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "flowgate.volumeMounts" -}}
- name: config
  mountPath: /etc/flowgate
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}
