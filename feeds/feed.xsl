<?xml version="1.0" encoding="UTF-8"?>
<!--
  The readable page of an aggregator Atom feed, for people who open a feed URL in a browser.
  Feed readers ignore it and read the Atom as it is. Published beside the feeds as feed.xsl and
  referenced from each feed by an xml-stylesheet processing instruction; `aggregator serve` also
  applies it on the server for browsers (Chromium now warns about, and is removing, client-side
  XSLT). XSLT 1.0 only, no extensions and no disable-output-escaping (Firefox ignores it): the
  page shows each entry's plain-text summary and links to the original article.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:media="http://search.yahoo.com/mrss/"
    exclude-result-prefixes="atom media">
  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/atom:feed">
    <xsl:variable name="self" select="atom:link[@rel='self']/@href"/>
    <html lang="{@xml:lang}">
      <head>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="atom:title"/> (web feed)</title>
        <link rel="alternate" type="application/atom+xml" title="{atom:title}" href="{$self}"/>
        <style>
          body { font: 16px/1.55 system-ui, sans-serif; max-width: 46rem; margin: 0 auto; padding: 0 1rem 3rem; color: #222; }
          header { border-bottom: 1px solid #ddd; padding: 1rem 0; }
          .about { background: #fff8e1; border: 1px solid #f0d98c; padding: .6rem .8rem; border-radius: 4px; font-size: .92rem; }
          .about code { word-break: break-all; }
          article { border-bottom: 1px solid #eee; padding: .8rem 0; }
          article h2 { font-size: 1.15rem; margin: 0 0 .2rem; }
          .meta { color: #666; font-size: .85rem; }
          img { max-width: 100%; height: auto; }
          a { color: #0645ad; }
        </style>
      </head>
      <body>
        <header>
          <p class="about">This is a web feed. To subscribe, copy its address into your feed reader:
            <code><xsl:value-of select="$self"/></code> · <a href="./">all feeds</a></p>
          <h1><xsl:value-of select="atom:title"/></h1>
          <xsl:if test="atom:subtitle"><p><xsl:value-of select="atom:subtitle"/></p></xsl:if>
          <p class="meta"><xsl:value-of select="count(atom:entry)"/> entries · updated
            <xsl:call-template name="when"><xsl:with-param name="t" select="atom:updated"/></xsl:call-template></p>
        </header>
        <main>
          <xsl:apply-templates select="atom:entry"/>
        </main>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="atom:entry">
    <article>
      <xsl:if test="@xml:lang"><xsl:attribute name="lang"><xsl:value-of select="@xml:lang"/></xsl:attribute></xsl:if>
      <h2>
        <xsl:choose>
          <xsl:when test="atom:link[@rel='alternate' or not(@rel)]">
            <a href="{atom:link[@rel='alternate' or not(@rel)][1]/@href}"><xsl:value-of select="atom:title"/></a>
          </xsl:when>
          <xsl:otherwise><xsl:value-of select="atom:title"/></xsl:otherwise>
        </xsl:choose>
      </h2>
      <p class="meta">
        <time datetime="{atom:published}">
          <xsl:call-template name="when"><xsl:with-param name="t" select="atom:published"/></xsl:call-template>
        </time>
        <xsl:if test="atom:author/atom:name"> · <xsl:value-of select="atom:author/atom:name"/></xsl:if>
        <xsl:for-each select="atom:category"> · <xsl:value-of select="@term"/></xsl:for-each>
      </p>
      <xsl:if test="media:thumbnail/@url">
        <img src="{media:thumbnail/@url}" alt="{media:content/media:description}" loading="lazy"/>
      </xsl:if>
      <xsl:if test="atom:summary"><p><xsl:value-of select="atom:summary"/></p></xsl:if>
    </article>
  </xsl:template>

  <!-- 2022-10-21T19:39:42+00:00 -> 2022-10-21 19:39 UTC (the writer writes every time in UTC). -->
  <xsl:template name="when">
    <xsl:param name="t"/>
    <xsl:value-of select="concat(substring($t, 1, 10), ' ', substring($t, 12, 5), ' UTC')"/>
  </xsl:template>
</xsl:stylesheet>
