"""Non-learned head-pose estimators (landmarks + PnP) and face detectors."""
