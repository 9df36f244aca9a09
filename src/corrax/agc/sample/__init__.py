"""The generated AGC sample: processes and Pythia settings (``samples``), the
detector emulation (``detector``), generation into NanoAOD files (``generate``) and
coffea filesets (``inputs``)."""
