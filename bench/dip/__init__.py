"""Deep Image Prior purification (Ulyanov et al. 2018), the paper's defense of section V."""
