"""Tools around the agent that are not pipeline stages: the demo, the synthetic scene it draws,
probing images with the detector and reader, evaluating the detector on annotated images,
installing the agent as a service (``install``, with ``hostsys`` for its effects) and ``doctor``.
"""
