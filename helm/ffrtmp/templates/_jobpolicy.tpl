{{/* The job policy (values.jobPolicy) as the operator's flags and as lists the admission policy uses. */}}

{{- define "ffrtmp.jobPriorityClasses" -}}
{{- /* spec.priority maps to these three whatever the chart's classes are called */ -}}
{{- $names := list "ffrtmp-high" "ffrtmp-medium" "ffrtmp-low" -}}
{{- range .Values.priorityClasses.classes }}{{ $names = append $names .name }}{{ end -}}
{{- range .Values.jobPolicy.priorityClassNames }}{{ $names = append $names . }}{{ end -}}
{{- $names | uniq | toJson -}}
{{- end -}}

{{- define "ffrtmp.jobPolicyArgs" -}}
{{- $p := .Values.jobPolicy -}}
{{- range $ns, $folders := $p.hostPath }}
{{- range $folders }}
- {{ printf "--host-path=%s=%s" $ns . | quote }}
{{- end }}
{{- end }}
{{- range (include "ffrtmp.jobPriorityClasses" . | fromJsonArray) }}
- {{ printf "--priority-class=%s" . | quote }}
{{- end }}
{{- range $p.inputFormats }}
- {{ printf "--input-format=%s" . | quote }}
{{- end }}
{{- range (($p.egress | default dict).allow | default list) }}
- {{ printf "--egress-allow=%s" . | quote }}
{{- end }}
- {{ printf "--job-cpu-request=%v" $p.resources.default.requests.cpu | quote }}
- {{ printf "--job-memory-request=%v" $p.resources.default.requests.memory | quote }}
- {{ printf "--job-cpu-limit=%v" $p.resources.default.limits.cpu | quote }}
- {{ printf "--job-memory-limit=%v" $p.resources.default.limits.memory | quote }}
- {{ printf "--job-max-cpu=%v" $p.resources.max.cpu | quote }}
- {{ printf "--job-max-memory=%v" $p.resources.max.memory | quote }}
- {{ printf "--empty-dir-size-limit=%v" $p.emptyDir.defaultSizeLimit | quote }}
- {{ printf "--max-memory-empty-dir=%v" $p.emptyDir.maxMemory | quote }}
{{- end -}}
