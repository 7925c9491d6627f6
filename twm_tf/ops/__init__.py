"""CPU substitutes that compute what a standard layer or op computes, faster."""
