"""Randomized smoothing (Cohen, Rosenfeld and Kolter, 2019): a detector's majority vote under Gaussian noise,
with a certified L2 radius per image.

- `bench.smoothing.stats`: the two tests (PREDICT's two-sided binomial test, CERTIFY's one-sided
  Clopper-Pearson bound) and the radius sigma * Phi^-1(pA_lower);
- `bench.smoothing.sampling`: the base classifier's votes under noise, each image's noise seeded from its
  content, and the soft smoothed classifier attacks differentiate (mean softmax over noise samples);
- `bench.smoothing.defense`: the `smoothing` defense (noise augmentation in training, the smoothed
  detector at evaluation);
- `bench.smoothing.certify`: the `certify` cell kind (a suite section) on the attacked fakes;
- `bench.smoothing.scoring`: what an attack cell on a smoothed detector adds (L2 from the certified input);
- `bench.smoothing.report`: the leaderboard's bracket (certified accuracy under attacked accuracy per L2).
"""
