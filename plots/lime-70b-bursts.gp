# lime-70b-bursts: mean end-to-end latency of LIME and the on-demand baselines against the burst size, with decode
# steps batched (up to 8 requests; left) and without batching (right).
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/lime-70b-bursts"
if (!exists("outbase")) outbase = "results/lime-70b-bursts"
labels = system("cat '".datadir."/labels-with-data.txt'")

set datafile separator "\t"
set datafile missing "nan"
set logscale xy
set xtics (1, 2, 4, 8, 16, 32)
set xrange [0.8:40]
set xlabel "requests arriving together (burst size)"
set ylabel "mean end-to-end latency (s)"
set grid
set key top left
do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1200,520 font ",11" } else { set terminal pdfcairo size 9in,3.8in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,2 title "Llama-3.3-70B BF16 on four Jetsons (simulated): LIME against on-demand offloading, by burst size"
  do for [mb in "8 1"] {
    set title (mb eq "8" ? "decode steps of up to 8 requests batched" : "no batching (max_batch 1)") noenhanced
    plot for [l in labels] datadir."/".l.".tsv" using (column("max_batch") == mb + 0 ? column("burst") : NaN):"e2e_mean_s" \
         with linespoints lw 2 pt 7 title l
  }
  unset multiplot
}
