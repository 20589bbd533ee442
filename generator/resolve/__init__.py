"""Stage 2: validated spec files + workflows -> the typed model the templates print.

:mod:`.project` is the entry (one call for a whole specs folder); :mod:`.endpoints` checks one
endpoint against its workflow, :mod:`.fields` shapes what it renders to, :mod:`.training`
resolves training functions, :mod:`.plan` decides model residency and launch flags,
:mod:`.gpus` knows Modal's GPUs. Every decision ends in :mod:`.model`."""
