# lime-70b-bursts: mean end-to-end latency of LIME and the on-demand baselines against the burst size.
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/lime-70b-bursts"
if (!exists("outbase")) outbase = "results/lime-70b-bursts"
labels = system("cat '".datadir."/labels-with-data.txt'")

set datafile separator "\t"
set datafile missing "nan"
set logscale xy
set xtics (1, 2, 4, 8, 16, 32)
set xlabel "requests arriving together (burst size)"
set ylabel "mean end-to-end latency (s)"
set grid
set key top left
do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 900,520 font ",11" } else { set terminal pdfcairo size 6.5in,3.8in font ",9" }
  set output outbase.".".fmt
  set title "Llama-3.3-70B BF16 on four Jetsons (simulated): LIME's lead does not grow with the burst"
  plot for [l in labels] datadir."/".l.".tsv" using "burst":"e2e_mean_s" with linespoints lw 2 pt 7 title l
}
