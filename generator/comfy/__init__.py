"""What ryla-gen knows of ComfyUI, used at build time and inside the container: API-format
workflows (:mod:`.workflow`), the node catalog (:mod:`.catalog`) and the checks of one against
the other (:mod:`.checks`)."""
