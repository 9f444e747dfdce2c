"""The cluster suite: the image, the chart and jobs as pods on a real cluster (make cluster, kind, any)."""
