"""Collectors: cgroup accounting (v1 and v2), host processes, background sampling."""
