"""Tag maps (YAML) that plant engineers edit; ``demo-line.yaml`` is the demo line's."""
