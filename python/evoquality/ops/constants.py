"""The ops' numeric constants, in a module without torch: the configs name them as their defaults (a config is read
by `evoquality --help`, which must not import torch), and the ops use them as theirs."""

GAMMA = 1e-6  # variance floor of the Thurstone denominator [decision] as VisualQuality-R1 (docs/method.md)
EPS_ADV = 1e-4  # epsilon of the group z-score of the advantages: TRL's constant
SCALES = ("group", "batch", "none")  # advantage scaling: TRL's scale_rewards values
