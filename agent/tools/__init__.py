"""Tools around the agent that are not pipeline stages: the demo, the synthetic scene it draws,
probing images with the detector and reader, and evaluating the detector on annotated images.
"""
