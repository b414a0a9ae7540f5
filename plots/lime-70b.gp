# lime-70b: LIME against EdgeShard and the even split with on-demand loading, Llama-3.3-70B BF16 on four
# Jetsons, under sporadic and bursty arrivals: mean end-to-end latency (left) and throughput (right).
# Inputs (set with -e): datadir = directory written by `edgelab export`; outbase = output path without extension.
if (!exists("datadir")) datadir = "build/plot-data/lime-70b"
if (!exists("outbase")) outbase = "results/lime-70b"
labels = system("cat '".datadir."/labels-with-data.txt'")
n = words(labels)

set datafile separator "\t"
set datafile missing "nan"
set style fill solid 0.8 border -1
set boxwidth 0.25
set grid ytics
set xrange [-0.5:1.5]
set xtics ("sporadic" 0, "bursty (16 at once)" 1)
set key top left
do for [fmt in "png pdf"] {
  if (fmt eq "png") { set terminal pngcairo size 1100,480 font ",11" } else { set terminal pdfcairo size 8in,3.5in font ",9" }
  set output outbase.".".fmt
  set multiplot layout 1,2 title "Llama-3.3-70B BF16 on AGX Orin 64 + AGX Orin 32 + Orin NX 16 + Orin Nano 8 (109.5 GB for 141 GB; simulated)"
  set ylabel "mean end-to-end latency (s)"
  set yrange [0:*]
  plot for [i=1:n] datadir."/".word(labels, i).".tsv" \
       using ((strcol("param.arrival") eq "sporadic" ? 0 : 1) + (i - (n + 1) / 2.0) * 0.27):"e2e_mean_s" with boxes title word(labels, i)
  set ylabel "throughput (tokens/s)"
  plot for [i=1:n] datadir."/".word(labels, i).".tsv" \
       using ((strcol("param.arrival") eq "sporadic" ? 0 : 1) + (i - (n + 1) / 2.0) * 0.27):"throughput_tokens_per_s" with boxes title word(labels, i)
  unset multiplot
}
